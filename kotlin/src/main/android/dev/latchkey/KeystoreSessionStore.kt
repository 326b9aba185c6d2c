// Android only (android.security.keystore): compiled into the AAR, not into the JVM tests.
package dev.latchkey

import android.content.Context
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import java.io.File
import java.nio.ByteBuffer
import java.security.KeyStore
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/**
 * A [SessionStore] sketch for Android: one file per account in the app's private files
 * directory, encrypted with AES-256-GCM under a non-exportable key in the Android Keystore.
 *
 * Every process of the app (e.g. `:sync` services) sees the same files; Latchkey serialises
 * writers with its coordination database, so no locking is needed here. Writes are atomic
 * (temporary file + rename). A missing or undecryptable key (e.g. after a backup restore to
 * another device) surfaces as a permanent failure: the user signs in again.
 *
 * Layout of a file: generation (8 bytes) | format (4) | IV length (4) | IV | ciphertext+tag.
 * Exclude `latchkey/` from Auto Backup (the key does not travel with it).
 */
class KeystoreSessionStore(
    context: Context,
    private val keyAlias: String = "dev.latchkey.session",
) : SessionStore {
    private val directory = File(context.filesDir, "latchkey").apply { mkdirs() }

    private fun file(account: String) =
        File(directory, account.toByteArray().joinToString("") { "%02x".format(it) } + ".session")

    private fun key(): SecretKey {
        val keyStore = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
        (keyStore.getKey(keyAlias, null) as SecretKey?)?.let { return it }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, "AndroidKeyStore")
        generator.init(
            KeyGenParameterSpec.Builder(
                keyAlias,
                KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT,
            )
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                .build(),
        )
        return generator.generateKey()
    }

    private fun failure(message: String, error: Throwable, retryable: Boolean) =
        StoreFailure.Failed("$message: ${error.javaClass.simpleName}", retryable)

    override suspend fun save(account: String, blob: SessionBlob) = withContext(Dispatchers.IO) {
        try {
            val cipher = Cipher.getInstance("AES/GCM/NoPadding")
            cipher.init(Cipher.ENCRYPT_MODE, key())
            val sealed = cipher.doFinal(blob.data)
            val iv = cipher.iv
            val bytes = ByteBuffer.allocate(16 + iv.size + sealed.size)
                .putLong(blob.generation.toLong()).putInt(blob.format.toInt())
                .putInt(iv.size).put(iv).put(sealed).array()
            val target = file(account)
            val temporary = File(directory, target.name + ".tmp")
            temporary.writeBytes(bytes)
            if (!temporary.renameTo(target)) throw java.io.IOException("rename failed")
        } catch (e: java.io.IOException) {
            throw failure("save", e, retryable = true)
        } catch (e: java.security.GeneralSecurityException) {
            throw failure("save", e, retryable = false)
        }
    }

    override suspend fun load(account: String): SessionBlob? = withContext(Dispatchers.IO) {
        val source = file(account)
        if (!source.exists()) return@withContext null
        try {
            val buffer = ByteBuffer.wrap(source.readBytes())
            val generation = buffer.long.toULong()
            val format = buffer.int.toUInt()
            val iv = ByteArray(buffer.int).also { buffer.get(it) }
            val sealed = ByteArray(buffer.remaining()).also { buffer.get(it) }
            val cipher = Cipher.getInstance("AES/GCM/NoPadding")
            cipher.init(Cipher.DECRYPT_MODE, key(), GCMParameterSpec(128, iv))
            SessionBlob(generation, format, cipher.doFinal(sealed))
        } catch (e: java.io.IOException) {
            throw failure("load", e, retryable = true)
        } catch (e: java.security.GeneralSecurityException) {
            throw failure("load", e, retryable = false)
        } catch (e: java.nio.BufferUnderflowException) {
            throw failure("load", e, retryable = false)
        }
    }

    override suspend fun clear(account: String) = withContext(Dispatchers.IO) {
        val target = file(account)
        if (target.exists() && !target.delete()) {
            throw StoreFailure.Failed("clear: delete failed", true)
        }
    }
}
