package caps

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

func isolators(t *testing.T, s string) types.Isolators {
	t.Helper()
	var isos types.Isolators
	if err := json.Unmarshal([]byte(s), &isos); err != nil {
		t.Fatalf("parse isolators: %v", err)
	}
	return isos
}

func TestFromIsolators(t *testing.T) {
	tests := []struct {
		name      string
		isolators string
		want      Set
		set       bool
		wantErr   bool
	}{
		{name: "none", isolators: `[]`, want: Default},
		{name: "other isolators only", isolators: `[{"name":"os/linux/oom-score-adj","value":5}]`, want: Default},
		{
			name: "retain within the default", isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_CHOWN"]}}]`,
			want: Of(Chown), set: true,
		},
		{
			name: "retain beyond the default", isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_CHOWN","CAP_SYS_ADMIN"]}}]`,
			want: Of(Chown, SysAdmin), set: true,
		},
		{
			name: "remove", isolators: `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_MKNOD","CAP_SYS_ADMIN"]}}]`,
			want: Default.Remove(MkNod), set: true,
		},
		{
			name: "the last retain-set counts", isolators: `[
				{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_SYS_ADMIN"]}},
				{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}}]`,
			want: Of(Kill), set: true,
		},
		{
			name: "retain and remove", isolators: `[
				{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}},
				{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_KILL"]}}]`,
			wantErr: true,
		},
		{name: "unknown capability", isolators: `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_FLY"]}}]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, set, err := FromIsolators(isolators(t, tt.isolators))
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil || got != tt.want || set != tt.set {
				t.Fatalf("FromIsolators = %s, %v, %v; want %s, %v", got, set, err, tt.want, tt.set)
			}
		})
	}
}
