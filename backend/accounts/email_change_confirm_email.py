"""The email to the new address of an address change: a `UserEmailHandler` with the
`email_change_confirm` template, sent to the payload's `to` (the new address), whose
confirm link is made when it is sent (`email_change_links.ChangeLinks`)."""

KIND = "email.change_confirm"
TEMPLATE = "email_change_confirm"
