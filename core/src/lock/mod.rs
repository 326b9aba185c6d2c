//! Cross-process coordination on a shared SQLite file: lease lock, generations, journal.
