// swift-tools-version:6.0
// The Latchkey Swift package.
//
// Targets:
//   LatchkeyFFI        the C module of the Rust library: the generated header + modulemap
//                      (system library, Linux/dev builds) or LatchkeyFFI.xcframework (apps)
//   LatchkeyGenerated  the Swift code uniffi generates, compiled in Swift 5 mode (it does not
//                      compile in Swift 6 mode with uniffi 0.32.2: uniffi issue #2929)
//   Latchkey           the public module (Swift 6): re-exports LatchkeyGenerated + thin glue
//   LatchkeyExample    a runnable example (app + notification extension, two processes)
//   LatchkeyBench      what `accessToken()` costs through the binding (scripts/bench.sh token;
//                      not a product: apps never depend on it)
//
// Which native library is linked:
//   * $LATCHKEY_FFI_LIB_DIR set: -L/-l/rpath on that directory (scripts/test-swift.sh).
//   * else releaseXCFrameworkURL/Checksum set (a release): the zipped XCFramework by URL.
//   * else LatchkeyFFI.xcframework next to this file (scripts/build-xcframework.sh):
//     a binary target, no unsafe flags, for Xcode / iOS apps.
//   * else ../target/debug (a local `swift test` after scripts/generate-bindings.sh).
// Run scripts/generate-bindings.sh first: the generated sources are not committed.
import Foundation
import PackageDescription

// Releases: scripts/build-xcframework.sh --zip prints the checksum of the zipped
// XCFramework; a release commit sets these two (the URL where the zip is published) and apps
// then get the binary by URL: `.binaryTarget(url:checksum:)`, no local build.
let releaseXCFrameworkURL: String? = nil
let releaseXCFrameworkChecksum: String? = nil

let packageDirectory = Context.packageDirectory
let environment = Context.environment
let xcframeworkPath = "LatchkeyFFI.xcframework"
let libraryDirectory = environment["LATCHKEY_FFI_LIB_DIR"]
let useXCFramework = libraryDirectory == nil
    && FileManager.default.fileExists(atPath: "\(packageDirectory)/\(xcframeworkPath)")

let ffiTarget: Target
var generatedLinkerSettings: [LinkerSetting] = [
    // Frameworks the Rust static library needs on Apple platforms (rustls-platform-verifier,
    // system proxy settings); #[link] attributes of a static library do not reach the linker.
    .linkedFramework("Security", .when(platforms: [.iOS, .macOS])),
    .linkedFramework("SystemConfiguration", .when(platforms: [.iOS, .macOS])),
]
// CI (scripts/test-swift.sh) treats compiler warnings as errors, generated code included.
let strictSettings: [SwiftSetting] = environment["LATCHKEY_SWIFT_WARNINGS_AS_ERRORS"] == "1"
    ? [.unsafeFlags(["-warnings-as-errors"])] : []
if libraryDirectory == nil, let url = releaseXCFrameworkURL, let checksum = releaseXCFrameworkChecksum {
    ffiTarget = .binaryTarget(name: "LatchkeyFFI", url: url, checksum: checksum)
} else if useXCFramework {
    ffiTarget = .binaryTarget(name: "LatchkeyFFI", path: xcframeworkPath)
} else {
    let directory = libraryDirectory ?? "\(packageDirectory)/../target/debug"
    ffiTarget = .systemLibrary(name: "LatchkeyFFI", path: "Sources/LatchkeyFFI")
    // The shared library, by -L/-l (never the .a as a file: Swift's autolink step cannot read
    // Rust's bitcode), with an rpath so tests find it at run time.
    generatedLinkerSettings += [
        .linkedLibrary("latchkey_ffi"),
        .unsafeFlags(["-L", directory, "-Xlinker", "-rpath", "-Xlinker", directory]),
    ]
}

let package = Package(
    name: "Latchkey",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Latchkey", targets: ["Latchkey"]),
        .executable(name: "LatchkeyExample", targets: ["LatchkeyExample"]),
    ],
    targets: [
        ffiTarget,
        .target(
            name: "LatchkeyGenerated",
            dependencies: ["LatchkeyFFI"],
            path: "Sources/LatchkeyGenerated",
            swiftSettings: [.swiftLanguageMode(.v5)] + strictSettings,
            linkerSettings: generatedLinkerSettings
        ),
        .target(
            name: "Latchkey",
            dependencies: ["LatchkeyGenerated"],
            path: "Sources/Latchkey",
            swiftSettings: [.swiftLanguageMode(.v6)] + strictSettings
        ),
        // A runnable example: app + notification extension as two processes sharing one
        // session (scripts/test-swift.sh runs it against the test provider).
        .executableTarget(
            name: "LatchkeyExample",
            dependencies: ["Latchkey"],
            path: "Sources/LatchkeyExample",
            swiftSettings: [.swiftLanguageMode(.v6)] + strictSettings
        ),
        // The token fast-path benchmark; scripts/bench.sh builds it with `-c release`.
        .executableTarget(
            name: "LatchkeyBench",
            dependencies: ["Latchkey"],
            path: "Sources/LatchkeyBench",
            swiftSettings: [.swiftLanguageMode(.v6)] + strictSettings
        ),
        .testTarget(
            name: "LatchkeyTests",
            dependencies: ["Latchkey"],
            path: "Tests/LatchkeyTests",
            swiftSettings: [.swiftLanguageMode(.v6)] + strictSettings
        ),
    ]
)
