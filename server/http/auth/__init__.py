"""Staff authentication: passwords, TOTP, server-side sessions, CSRF, role checks."""
