"""The output wing: the run folder, tables, pages (Markdown, LaTeX, HTML), plots, paired tests, published numbers."""
