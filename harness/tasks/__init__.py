"""The task side: task files and their catalog, data, preprocessing, rendering and prompts."""
