package xapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// eventMargin is added to an event.from timeout for the HTTP deadline, so
// the server has time to answer after the long poll ends.
const eventMargin = 30 * time.Second

// callInto calls method and decodes its result into T.
func callInto[T any](ctx context.Context, c *Client, method string, args ...any) (T, error) {
	var out T
	res, err := c.Call(ctx, method, args...)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return out, &TransportError{URL: c.t.endpoint, Method: method,
			Err: fmt.Errorf("%w: decode result: %v", ErrMalformedResponse, err)}
	}
	return out, nil
}

// callVoid calls a method whose result (xapi sends "") is of no interest.
func callVoid(ctx context.Context, c *Client, method string, args ...any) error {
	_, err := c.Call(ctx, method, args...)
	return err
}

// Records.

func (c *Client) PoolGetAllRecords(ctx context.Context) (map[PoolRef]PoolRecord, error) {
	return callInto[map[PoolRef]PoolRecord](ctx, c, "pool.get_all_records")
}

func (c *Client) PoolGetRecord(ctx context.Context, ref PoolRef) (PoolRecord, error) {
	return callInto[PoolRecord](ctx, c, "pool.get_record", ref)
}

func (c *Client) HostGetAllRecords(ctx context.Context) (map[HostRef]HostRecord, error) {
	return callInto[map[HostRef]HostRecord](ctx, c, "host.get_all_records")
}

func (c *Client) HostGetRecord(ctx context.Context, ref HostRef) (HostRecord, error) {
	return callInto[HostRecord](ctx, c, "host.get_record", ref)
}

func (c *Client) HostMetricsGetAllRecords(ctx context.Context) (map[HostMetricsRef]HostMetricsRecord, error) {
	return callInto[map[HostMetricsRef]HostMetricsRecord](ctx, c, "host_metrics.get_all_records")
}

func (c *Client) HostMetricsGetRecord(ctx context.Context, ref HostMetricsRef) (HostMetricsRecord, error) {
	return callInto[HostMetricsRecord](ctx, c, "host_metrics.get_record", ref)
}

func (c *Client) VMGetAllRecords(ctx context.Context) (map[VMRef]VMRecord, error) {
	return callInto[map[VMRef]VMRecord](ctx, c, "VM.get_all_records")
}

func (c *Client) VMGetRecord(ctx context.Context, ref VMRef) (VMRecord, error) {
	return callInto[VMRecord](ctx, c, "VM.get_record", ref)
}

func (c *Client) SRGetAllRecords(ctx context.Context) (map[SRRef]SRRecord, error) {
	return callInto[map[SRRef]SRRecord](ctx, c, "SR.get_all_records")
}

func (c *Client) SRGetRecord(ctx context.Context, ref SRRef) (SRRecord, error) {
	return callInto[SRRecord](ctx, c, "SR.get_record", ref)
}

func (c *Client) PBDGetAllRecords(ctx context.Context) (map[PBDRef]PBDRecord, error) {
	return callInto[map[PBDRef]PBDRecord](ctx, c, "PBD.get_all_records")
}

func (c *Client) PBDGetRecord(ctx context.Context, ref PBDRef) (PBDRecord, error) {
	return callInto[PBDRecord](ctx, c, "PBD.get_record", ref)
}

func (c *Client) VDIGetRecord(ctx context.Context, ref VDIRef) (VDIRecord, error) {
	return callInto[VDIRecord](ctx, c, "VDI.get_record", ref)
}

// Pool operations.

// PoolDesignateNewMaster makes host the master (refused with HA_IS_ENABLED
// while XenHA is on; HOST_OFFLINE if host is not live).
func (c *Client) PoolDesignateNewMaster(ctx context.Context, host HostRef) error {
	return callVoid(ctx, c, "pool.designate_new_master", host)
}

// PoolEmergencyTransitionToMaster turns this slave into the master. Use a
// slave-local client.
func (c *Client) PoolEmergencyTransitionToMaster(ctx context.Context) error {
	return callVoid(ctx, c, "pool.emergency_transition_to_master")
}

// PoolEmergencyResetMaster tells this slave its new master's address. Use a
// slave-local client.
func (c *Client) PoolEmergencyResetMaster(ctx context.Context, masterAddress string) error {
	return callVoid(ctx, c, "pool.emergency_reset_master", masterAddress)
}

// PoolRecoverSlaves, on a new master, resets the master address of the
// slaves still pointing elsewhere and returns them.
func (c *Client) PoolRecoverSlaves(ctx context.Context) ([]HostRef, error) {
	return callInto[[]HostRef](ctx, c, "pool.recover_slaves")
}

// PoolEnableHA arms XenHA with statefiles on heartbeatSRs; config may set
// "timeout" (seconds, at least 10).
func (c *Client) PoolEnableHA(ctx context.Context, heartbeatSRs []SRRef, config map[string]string) error {
	if heartbeatSRs == nil {
		heartbeatSRs = []SRRef{}
	}
	if config == nil {
		config = map[string]string{}
	}
	return callVoid(ctx, c, "pool.enable_ha", heartbeatSRs, config)
}

func (c *Client) PoolDisableHA(ctx context.Context) error {
	return callVoid(ctx, c, "pool.disable_ha")
}

// PoolJoin, called on the joining host, joins the pool whose master is at
// masterAddress. The password is scrubbed from any error.
func (c *Client) PoolJoin(ctx context.Context, masterAddress, masterUsername string, masterPassword Secret) error {
	return callVoid(ctx, c, "pool.join", masterAddress, masterUsername, masterPassword)
}

func (c *Client) PoolEject(ctx context.Context, host HostRef) error {
	return callVoid(ctx, c, "pool.eject", host)
}

// Host operations.

// HostEmergencyHADisable disarms fencing and stops xhad on this host. Use a
// slave-local client when the host is a slave.
func (c *Client) HostEmergencyHADisable(ctx context.Context, soft bool) error {
	return callVoid(ctx, c, "host.emergency_ha_disable", soft)
}

func (c *Client) HostEnable(ctx context.Context, host HostRef) error {
	return callVoid(ctx, c, "host.enable", host)
}

func (c *Client) HostDisable(ctx context.Context, host HostRef) error {
	return callVoid(ctx, c, "host.disable", host)
}

// HostShutdown needs the host disabled first (HOST_NOT_DISABLED).
func (c *Client) HostShutdown(ctx context.Context, host HostRef) error {
	return callVoid(ctx, c, "host.shutdown", host)
}

// HostCallPlugin runs fn of a dom0 plugin on host and returns its output.
func (c *Client) HostCallPlugin(ctx context.Context, host HostRef, plugin, fn string, args map[string]string) (string, error) {
	if args == nil {
		args = map[string]string{}
	}
	return callInto[string](ctx, c, "host.call_plugin", host, plugin, fn, args)
}

// VM operations.

// VMPowerStateReset marks a VM Halted when its host is dead (HOST_IS_LIVE
// if the host answers).
func (c *Client) VMPowerStateReset(ctx context.Context, vm VMRef) error {
	return callVoid(ctx, c, "VM.power_state_reset", vm)
}

// Events.

// EventFrom waits up to timeout for events on classes ("vm", "host"... or
// "*") after token ("" = from the start, an "add" per existing object).
// The HTTP deadline is timeout plus a margin so the long poll is not cut
// short; a deadline on ctx still wins.
func (c *Client) EventFrom(ctx context.Context, classes []string, token string, timeout time.Duration) (*EventBatch, error) {
	if classes == nil {
		classes = []string{}
	}
	if timeout < 0 {
		timeout = 0
	}
	res, err := c.call(ctx, timeout+eventMargin, "event.from", []any{classes, token, floatParam(timeout.Seconds())})
	if err != nil {
		return nil, err
	}
	var batch EventBatch
	if err := json.Unmarshal(res, &batch); err != nil {
		return nil, &TransportError{URL: c.t.endpoint, Method: "event.from",
			Err: fmt.Errorf("%w: decode event batch: %v", ErrMalformedResponse, err)}
	}
	return &batch, nil
}

// floatParam encodes a float with a decimal point even when it is whole
// (30.0, not 30), so a server parsing the XenAPI float type never sees an
// integer literal.
type floatParam float64

func (f floatParam) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat(nil, float64(f), 'f', -1, 64)
	if !bytes.ContainsAny(b, ".") {
		b = append(b, ".0"...)
	}
	return b, nil
}
