package main

import (
	"testing"
	"time"
)

func TestParseAppStart(t *testing.T) {
	const (
		seal  = `time=2026-12-06T23:00:00.000Z level=DEBUG msg="containment: pod root sealed" flavor=nspawn app=a mode=run took=500µs`
		enter = `time=2026-12-06T23:00:00.001Z level=DEBUG msg="containment: app namespaces entered" flavor=nspawn app=a mode=run took=2.5ms fast=true`
		run   = `time=2026-12-06T23:00:00.004Z level=DEBUG msg="app running in its namespaces" flavor=nspawn app=a mode=run took=4ms fast=true`
		other = `time=2026-12-06T23:00:00.004Z level=DEBUG msg="app started" flavor=nspawn app=a mode=run took=1ms`
	)
	tests := []struct {
		name    string
		stderr  string
		want    appStart
		wantErr bool
	}{
		{name: "all lines", stderr: other + "\n" + seal + "\n" + enter + "\n" + run + "\n", want: appStart{containment: 3 * time.Millisecond, toExec: 4 * time.Millisecond}},
		{name: "no seal", stderr: enter + "\n" + run, wantErr: true},
		{name: "no exec line", stderr: seal + "\n" + enter, wantErr: true},
		{name: "bad duration", stderr: seal + "\n" + enter + "\n" + `msg="app running in its namespaces" took=soon`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAppStart(tt.stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
