package xapi

// NullRef is the reference XenAPI uses for "no object". It is untyped so it
// compares with every ref type.
const NullRef = "OpaqueRef:NULL"

// Ref is an opaque object reference ("OpaqueRef:<uuid>") of any class.
type Ref string

// Typed references, so a host ref cannot be passed where a VM ref is wanted.
type (
	SessionRef     string
	PoolRef        string
	HostRef        string
	HostMetricsRef string
	VMRef          string
	SRRef          string
	PBDRef         string
	VDIRef         string
)
