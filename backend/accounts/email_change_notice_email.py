"""The notice to the old address of an address change: "your address is being changed to
n***@domain", with a link that undoes it for EMAIL_CHANGE_REVERT_DAYS. Sent to the
payload's `to` (the old address: the account's may have changed by the time it goes) by a
`UserEmailHandler` with the `email_change_notice` template, its link made when it is sent
(`email_change_links.ChangeLinks`)."""

KIND = "email.change_notice"
TEMPLATE = "email_change_notice"
