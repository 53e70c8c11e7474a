"""The notice to the owner of an address another account tried to move to: "someone
tried to move an account to your address; nothing changed". No link: there is nothing to
do. Sent to that owner's account (its own address) by a `UserEmailHandler` with the
`email_change_taken` template; the requester is answered as if the address were free."""

KIND = "email.change_taken"
TEMPLATE = "email_change_taken"
