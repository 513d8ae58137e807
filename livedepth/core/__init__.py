"""The leaf layer: errors, vocabularies, frames, files and the generic stage runtime (imports nothing above)."""
