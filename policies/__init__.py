"""Classification, grants, transforms (masking) and the access decision."""
