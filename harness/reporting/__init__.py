"""The output wing: the run folder, tables, pages (Markdown, LaTeX, HTML), plots, paired tests, published numbers.

Imports go one way: results -> pages -> build -> tables/grid/significance/published/lineage, with plots
and runs beside them; nothing here imports the training code."""
