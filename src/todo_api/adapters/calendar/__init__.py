"""Calendar arithmetic: RFC 5545 recurrence rules on the wall clock of IANA time zones."""
