"""Users, roles, developer apps (OAuth clients), the authorization server and token checks."""
