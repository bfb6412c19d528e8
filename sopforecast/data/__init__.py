"""Data layer: reading sources, validating the contract, hierarchies, datasets."""
