// Gradle Android library project of Latchkey's Kotlin API. Not built on the Linux CI (no
// Android SDK there): CI compiles the same sources with kotlinc and runs them on the JVM
// (scripts/test-kotlin.sh). Build the AAR with scripts/build-aar.sh.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        id("com.android.library") version "8.7.3"
        // Same Kotlin as the kotlinc of scripts/install-kotlin.sh.
        id("org.jetbrains.kotlin.android") version "2.4.20"
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
        // The Android component of rustls-platform-verifier (the Kotlin half of the platform
        // certificate verifier, see dev.latchkey.PlatformTrust), published by that project as
        // a Maven repository. Apps that use the AAR add the same repository.
        maven {
            url = uri("https://github.com/rustls/rustls-platform-verifier/raw/maven-archive/android-release-support/maven/")
            content { includeGroup("rustls") }
        }
    }
}

rootProject.name = "latchkey"
