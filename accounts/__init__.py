"""Accounts and sign-in (PROTOCOL v1.2 "Accounts and sign-in"): family sign-up, e-mail
confirmation, password sign-in and reset, identity review, staff passwords and TOTP, resident
PINs on shared tablets, and the mail outbox."""
