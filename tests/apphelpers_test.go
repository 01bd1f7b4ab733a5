//go:build functional && (nspawn || kvm)

package tests

import "encoding/json"

// appStatusJSON is what nscn app status --format=json prints.
type appStatusJSON struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	PID      int    `json:"pid"`
	ExitCode *int   `json:"exitCode"`
	Created  string `json:"createdAt"`
	Started  string `json:"startedAt"`
	Finished string `json:"finishedAt"`
}

func (e *env) appStatus(uuid, app string) appStatusJSON {
	e.t.Helper()
	r := e.ok("app", "status", uuid, "--app="+app, "--format=json")
	var st appStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		e.t.Fatalf("app status --format=json printed %q: %v", r.stdout, err)
	}
	return st
}

func (e *env) appList(uuid string) map[string]appStatusJSON {
	e.t.Helper()
	r := e.ok("app", "list", uuid, "--format=json")
	var sts []appStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil {
		e.t.Fatalf("app list --format=json printed %q: %v", r.stdout, err)
	}
	out := map[string]appStatusJSON{}
	for _, st := range sts {
		out[st.Name] = st
	}
	return out
}
