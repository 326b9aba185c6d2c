// The Latchkey Android library (AAR): the uniffi-generated Kotlin (src/generated/kotlin,
// written by scripts/generate-bindings.sh), the glue in src/main/kotlin, and
// liblatchkey_ffi.so per ABI in src/main/jniLibs (written by scripts/build-aar.sh).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
    `maven-publish`
}

// Maven coordinates: dev.latchkey:latchkey:<the workspace version in ../Cargo.toml>, so the
// AAR and the Rust library it carries always share one version.
group = "dev.latchkey"
version = Regex("""(?m)^version\s*=\s*"([^"]+)"""")
    .find(rootDir.resolve("../Cargo.toml").readText())?.groupValues?.get(1)
    ?: error("no version in ../Cargo.toml")

// The verifier's Android component must be exactly the version of the
// rustls-platform-verifier-android crate that the Rust library was built with.
val platformVerifierVersion: String = Regex(
    """(?m)^name = "rustls-platform-verifier-android"\s*\nversion = "([^"]+)"""",
).find(rootDir.resolve("../Cargo.lock").readText())?.groupValues?.get(1)
    ?: error("rustls-platform-verifier-android not in ../Cargo.lock")

android {
    namespace = "dev.latchkey"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            java.srcDir("src/generated/kotlin")
            // Android-only glue (Keystore), kept out of the JVM tests of scripts/test-kotlin.sh.
            java.srcDir("src/main/android")
            jniLibs.srcDir("src/main/jniLibs")
        }
    }

    buildTypes {
        release {
            // A library is not minified; apps shrink it with consumer-rules.pro.
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs {
            // The Rust library is already stripped (profile release-mobile).
            keepDebugSymbols += "**/liblatchkey_ffi.so"
        }
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
        allWarningsAsErrors.set(true)
    }
}

dependencies {
    // The @aar artifact carries JNA's native dispatch library for the Android ABIs.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
    // The OkHttp glue (LatchkeyInterceptor, LatchkeyAuthenticator) compiles against OkHttp 3.14
    // (binary compatible with 4.x); the app brings its own OkHttp.
    compileOnly("com.squareup.okhttp3:okhttp:3.14.9")
    // The Kotlin half of TrustRoots.Platform on Android (PlatformTrust.init); in the POM, so
    // apps get it with the AAR.
    api("rustls:rustls-platform-verifier:$platformVerifierVersion")
}

// `./gradlew publishReleasePublicationToMavenLocal` (or a repository added here) publishes
// the AAR with its POM (dependencies: JNA @aar, kotlinx-coroutines-android).
afterEvaluate {
    publishing {
        publications {
            create<MavenPublication>("release") {
                from(components["release"])
                artifactId = "latchkey"
                pom {
                    name.set("Latchkey")
                    description.set("OpenID Connect sign-in for native apps, one session across every process")
                }
            }
        }
    }
}
