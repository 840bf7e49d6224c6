"""Contamination studies: which evaluated examples share an N-gram with a training corpus (the GPT-3 paper's
Appendix C). normalize (text -> words), corpus (checked files, shards, bounded chunks), index (64-bit N-gram hashes
of the task side, the corpus streamed past them), examples (tasks -> the texts the model reads, N per task),
scan (the run, one pass, a process pool), output (overlap.csv, summary.md). `harness overlap` drives it.

Nothing here imports torch; numpy is imported by index and scan only."""
