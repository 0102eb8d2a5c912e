// Package xapi is a small XenAPI (XAPI: XenServer, XCP-ng) client speaking
// JSON-RPC over HTTPS.
//
// A Client talks to one host and owns one session: it logs in lazily,
// logs in again transparently when the session expires, and honours the
// caller's context on every call. A Pool keeps the address of every pool
// member so it can find the master again after a failover, even when the
// old master is dead (a client that only knows the master cannot).
//
// API failures come back as *Error (code + params); a host that cannot be
// reached, or answers something that is not a XenAPI response, gives a
// *TransportError. Passwords and session refs never appear in logs or
// error strings.
package xapi
