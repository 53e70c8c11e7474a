"""The "your password was changed" email: queued in the transaction of a completed reset,
sent by a `UserEmailHandler` with the `password_changed` template. It carries no link
that acts: only a way back (`/password/forgot`) for someone who did not make the change."""

KIND = "email.password_changed"
TEMPLATE = "password_changed"
