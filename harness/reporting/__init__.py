"""The output wing: the run folder, tables, pages (Markdown, LaTeX, HTML), plots, paired tests, published numbers
(published.toml and the GPT-3 Table H.1 CSV, gpt3), trend figures (trends) and changed examples (changes, examples).

Imports go one way: results -> pages -> build -> tables/grid/significance/published/gpt3/changes/lineage, with
plots, trends, examples and runs beside them; nothing here imports the training code."""
