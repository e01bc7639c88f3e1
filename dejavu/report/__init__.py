"""The summary and the report, in four layers, each using only those above it:

- `loading`: every file they read (paths from the rule's inputs; frames and arrays out);
- `tables`: pure DataFrame functions: the summary's joins, the tables the page shows;
- `figures`: frames in, matplotlib figures out, for any valid config;
- `summary` (rule `summary`: `summary.csv`) and `page` (rule `report`: the HTML page and
  `figures/`), the two rules' entry points.

The summary has its own rule so that no figure can cost the numbers.
"""
