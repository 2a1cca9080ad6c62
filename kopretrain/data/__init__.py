"""Review data: readers, column sources, rating schemes, dedup, group split, split files, data cards."""
