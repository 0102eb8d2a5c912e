package xapi

// Records hold the fields this project uses; the JSON tags are the
// datamodel names. Fields xapi sends that are not listed here are ignored,
// so newer hosts with more fields still decode. Datetimes stay strings
// ("20240420T12:00:00Z"): xapi's format is not RFC 3339.

// PoolRecord is a pool object.
type PoolRecord struct {
	UUID                     string            `json:"uuid"`
	NameLabel                string            `json:"name_label"`
	Master                   HostRef           `json:"master"`
	DefaultSR                SRRef             `json:"default_SR"`
	OtherConfig              map[string]string `json:"other_config"`
	HAEnabled                bool              `json:"ha_enabled"`
	HAConfiguration          map[string]string `json:"ha_configuration"`
	HAStatefiles             []string          `json:"ha_statefiles"`
	HAHostFailuresToTolerate int64             `json:"ha_host_failures_to_tolerate"`
	HAPlanExistsFor          int64             `json:"ha_plan_exists_for"`
	HAAllowOvercommit        bool              `json:"ha_allow_overcommit"`
	HAOvercommitted          bool              `json:"ha_overcommitted"`
}

// HostRecord is a host object.
type HostRecord struct {
	UUID            string            `json:"uuid"`
	NameLabel       string            `json:"name_label"`
	Address         string            `json:"address"` // management IP
	Hostname        string            `json:"hostname"`
	Enabled         bool              `json:"enabled"`
	Metrics         HostMetricsRef    `json:"metrics"`
	ResidentVMs     []VMRef           `json:"resident_VMs"`
	PBDs            []PBDRef          `json:"PBDs"`
	HAStatefiles    []string          `json:"ha_statefiles"`
	HANetworkPeers  []string          `json:"ha_network_peers"`
	SoftwareVersion map[string]string `json:"software_version"`
	OtherConfig     map[string]string `json:"other_config"`
	ControlDomain   VMRef             `json:"control_domain"`
	APIVersionMajor int64             `json:"API_version_major"`
	APIVersionMinor int64             `json:"API_version_minor"`
}

// HostMetricsRecord is a host_metrics object. Live is "the master thinks
// this host is live".
type HostMetricsRecord struct {
	UUID        string `json:"uuid"`
	Live        bool   `json:"live"`
	LastUpdated string `json:"last_updated"`
	MemoryTotal int64  `json:"memory_total"`
	MemoryFree  int64  `json:"memory_free"`
}

// VM power states (the datamodel's vm_power_state enum).
const (
	PowerStateHalted    = "Halted"
	PowerStatePaused    = "Paused"
	PowerStateRunning   = "Running"
	PowerStateSuspended = "Suspended"
)

// VMRecord is a VM object. HARestartPriority "restart" means HA-protected.
type VMRecord struct {
	UUID              string            `json:"uuid"`
	NameLabel         string            `json:"name_label"`
	PowerState        string            `json:"power_state"`
	ResidentOn        HostRef           `json:"resident_on"`
	IsControlDomain   bool              `json:"is_control_domain"`
	IsATemplate       bool              `json:"is_a_template"`
	IsASnapshot       bool              `json:"is_a_snapshot"`
	HARestartPriority string            `json:"ha_restart_priority"`
	HAAlwaysRun       bool              `json:"ha_always_run"`
	OtherConfig       map[string]string `json:"other_config"`
}

// SRRecord is a storage repository object.
type SRRecord struct {
	UUID        string            `json:"uuid"`
	NameLabel   string            `json:"name_label"`
	Type        string            `json:"type"`
	Shared      bool              `json:"shared"`
	PBDs        []PBDRef          `json:"PBDs"`
	ContentType string            `json:"content_type"`
	OtherConfig map[string]string `json:"other_config"`
}

// PBDRecord is a physical block device: the plug of an SR into a host.
type PBDRecord struct {
	UUID              string  `json:"uuid"`
	Host              HostRef `json:"host"`
	SR                SRRef   `json:"SR"`
	CurrentlyAttached bool    `json:"currently_attached"`
	// DeviceConfig can hold storage credentials: it prints redacted.
	DeviceConfig SecretMap `json:"device_config"`
}

// VDIRecord is a virtual disk; the bridge reads it to find which SR holds
// XenHA's statefile (pool.ha_statefiles lists VDI refs).
type VDIRecord struct {
	UUID      string `json:"uuid"`
	NameLabel string `json:"name_label"`
	SR        SRRef  `json:"SR"`
	Type      string `json:"type"`
}
