package gateway_test

import (
	"testing"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/gateway/hubtest"
)

// The in-process hub keeps the contract every hub keeps.
func TestMemoryHubContract(t *testing.T) {
	hubtest.Run(t, func(*testing.T) gateway.Hub {
		return gateway.NewMemoryHub(gateway.HubLimits{MaxRoomsPerClient: 3})
	})
}
