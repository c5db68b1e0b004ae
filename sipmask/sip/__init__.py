"""The sans-IO SIP layer (RFC 3261): transactions, dialogs and stateless checks. Nothing here
touches a socket, asyncio or the clock: time comes in as `now`."""
