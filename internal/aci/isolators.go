package aci

import (
	"encoding/json"
	"fmt"

	"github.com/nosecone/nscn/internal/errdefs"
)

// CheckIsolatorValues refuses JSON (an image or pod manifest) in which an
// isolator has no value. The appc schema package dereferences the missing
// value while decoding and panics, so this check must run before any
// manifest is decoded with it. The input must be valid JSON.
func CheckIsolatorValues(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return errdefs.InvalidArgument("parse manifest: %v", err)
	}
	return walkIsolators(v)
}

func walkIsolators(v any) error {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if k == "isolators" {
				if list, ok := child.([]any); ok {
					for i, iso := range list {
						obj, ok := iso.(map[string]any)
						if !ok {
							return errdefs.InvalidArgument("parse manifest: isolator %d is not an object", i)
						}
						if val, ok := obj["value"]; !ok || val == nil {
							return errdefs.InvalidArgument("parse manifest: isolator %v has no value", fmt.Sprint(obj["name"]))
						}
					}
				}
			}
			if err := walkIsolators(child); err != nil {
				return err
			}
		}
	case []any:
		for _, child := range t {
			if err := walkIsolators(child); err != nil {
				return err
			}
		}
	}
	return nil
}
