"""CKAN Action API compatibility (contract §11): a channel through the one enforcement door."""
