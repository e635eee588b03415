"""The web portal and developer center (contract §10): server-rendered pages."""
