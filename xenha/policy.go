// Package xenha keeps, per attached pool, the bridge's view of the pool
// (fed by XAPI's event stream and by probes of every member), decides who
// controls the pool, raises the warnings an operator must see, and
// publishes what changes as events.
//
// Data flows one way: XAPI → poolState → PoolView (derive) → events (diff)
// → the Hub → gRPC. Readers only ever load an immutable PoolView.
package xenha

import "fmt"

// Controller is who may act on a pool's failures.
type Controller int

const (
	ControllerNone       Controller = iota // nobody: policy or unknown state
	ControllerXenHA                        // XenServer elects and fences
	ControllerCloudStack                   // the bridge elects and fences
)

func (c Controller) String() string {
	switch c {
	case ControllerXenHA:
		return "XenHA"
	case ControllerCloudStack:
		return "CloudStack"
	}
	return "none"
}

// Policy is the operator's rule for choosing the controller.
type Policy string

const (
	PolicyAuto              Policy = "auto"
	PolicyRequireXenHA      Policy = "require_xenha"
	PolicyRequireCloudStack Policy = "require_cloudstack"
	PolicyObserve           Policy = "observe"
)

// ParsePolicy accepts the four policies; "" means auto.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return PolicyAuto, nil
	case PolicyAuto, PolicyRequireXenHA, PolicyRequireCloudStack, PolicyObserve:
		return p, nil
	}
	return "", fmt.Errorf("unknown policy %q: want auto, require_xenha, require_cloudstack or observe", s)
}

// Decide is the policy table. It needs the pool's last known XenHA state;
// a pool never observed has no controller.
//
//	policy              XenHA on     XenHA off
//	auto                XenHA        CloudStack
//	require_xenha       XenHA        none (warning)
//	require_cloudstack  none (warn)  CloudStack
//	observe             none         none
func Decide(p Policy, observed, haEnabled bool) Controller {
	if !observed {
		return ControllerNone
	}
	switch p {
	case PolicyAuto, "":
		if haEnabled {
			return ControllerXenHA
		}
		return ControllerCloudStack
	case PolicyRequireXenHA:
		if haEnabled {
			return ControllerXenHA
		}
	case PolicyRequireCloudStack:
		if !haEnabled {
			return ControllerCloudStack
		}
	}
	return ControllerNone
}
