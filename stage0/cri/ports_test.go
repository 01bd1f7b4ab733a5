package cri

import (
	"errors"
	"slices"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestPublishArgs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        []*runtimeapi.PortMapping
		hostNet   bool
		want      []string
		wantClass error
	}{
		{name: "none"},
		{name: "host port", in: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 12000}}, want: []string{"--publish=12000:80/tcp"}},
		{name: "container port only", in: []*runtimeapi.PortMapping{{ContainerPort: 80}}},
		{name: "host network", hostNet: true, in: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 12000}}},
		{
			name: "protocols and addresses",
			in: []*runtimeapi.PortMapping{
				{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
				{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 9, HostPort: 9, HostIp: "::1"},
				{ContainerPort: 80, HostPort: 8080, HostIp: "0.0.0.0"},
			},
			want: []string{"--publish=127.0.0.1:5353:53/udp", "--publish=[::1]:9:9/sctp", "--publish=8080:80/tcp"},
		},
		{name: "no container port", in: []*runtimeapi.PortMapping{{HostPort: 80}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "host port too big", in: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 70000}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad host IP", in: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 80, HostIp: "localhost"}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad protocol", in: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 80, Protocol: 9}}, wantClass: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := publishArgs(tc.in, tc.hostNet)
			if tc.wantClass != nil {
				if !errors.Is(err, tc.wantClass) {
					t.Fatalf("publishArgs error %v, want class %v", err, tc.wantClass)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("publishArgs = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
