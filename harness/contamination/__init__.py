"""Contamination studies: which evaluated examples share an N-gram with a training corpus (the GPT-3 paper's
Appendix C). normalize (text -> words), corpus (checked files, shards, bounded chunks), index (64-bit N-gram hashes
of the task side, the corpus streamed past them), examples (tasks -> the texts the model reads, N per task),
scan (the run, one pass, a process pool), ray_scan (the same shards as Ray tasks), output (overlap.csv, study.json,
summary.md). `harness overlap` drives it (run).

A study in use (`harness run --overlap DIR`): study (overlap.csv and study.json read back and checked), subsets
(every metric on the dirty and the clean examples), runfiles (the run folder's contamination.csv and labels);
reporting/contamination.py lays out the report's section.

Nothing here imports torch; numpy is imported by index, scan, corpus, tokens and subsets."""
