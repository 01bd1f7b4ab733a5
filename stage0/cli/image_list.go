package cli

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/store/index"
)

// imageFields are the columns `image list --fields` accepts, in rkt's names.
var imageFields = map[string]struct {
	header string
	value  func(im *index.Image, full bool) string
}{
	"id":         {"ID", func(im *index.Image, full bool) string { return pick(full, im.ID, im.Key) }},
	"name":       {"NAME", func(im *index.Image, _ bool) string { return nameWithVersion(im) }},
	"size":       {"SIZE", func(im *index.Image, full bool) string { return pick(full, fmt.Sprint(im.Size), humanSize(im.Size)) }},
	"importtime": {"IMPORT TIME", func(im *index.Image, full bool) string { return when(im.ImportTime, full) }},
	"lastused":   {"LAST USED", func(im *index.Image, full bool) string { return when(im.LastUsed, full) }},
	"source":     {"SOURCE", func(im *index.Image, _ bool) string { return im.Source }},
	"signedby":   {"SIGNED BY", func(im *index.Image, _ bool) string { return im.SignedBy }},
}

const defaultImageFields = "id,name,size,importtime,lastused"

// imageSortKeys compare two images by a field of --sort, rkt's names.
var imageSortKeys = map[string]func(a, b *index.Image) int{
	"id":         func(a, b *index.Image) int { return cmp.Compare(a.Key, b.Key) },
	"name":       func(a, b *index.Image) int { return cmp.Compare(nameWithVersion(a), nameWithVersion(b)) },
	"size":       func(a, b *index.Image) int { return cmp.Compare(a.Size, b.Size) },
	"importtime": func(a, b *index.Image) int { return a.ImportTime.Compare(b.ImportTime) },
	"lastused":   func(a, b *index.Image) int { return a.LastUsed.Compare(b.LastUsed) },
	"source":     func(a, b *index.Image) int { return cmp.Compare(a.Source, b.Source) },
	"signedby":   func(a, b *index.Image) int { return cmp.Compare(a.SignedBy, b.SignedBy) },
}

// sortImages orders images by the comma-separated fields of --sort, the
// first deciding, ascending unless order is "desc", as rkt's image list.
func sortImages(images []*index.Image, sortBy, order string) error {
	var keys []func(a, b *index.Image) int
	for _, f := range strings.Split(sortBy, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		k, ok := imageSortKeys[f]
		if !ok {
			return usageErrorf("image list: unknown --sort field %q (want id, name, size, importtime, lastused, source, signedby)", f)
		}
		keys = append(keys, k)
	}
	sign := 1
	switch order {
	case "asc":
	case "desc":
		sign = -1
	default:
		return usageErrorf("image list: unknown --order %q (want asc or desc)", order)
	}
	slices.SortStableFunc(images, func(a, b *index.Image) int {
		for _, k := range keys {
			if c := k(a, b); c != 0 {
				return sign * c
			}
		}
		return 0
	})
	return nil
}

func imageListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the images in the store",
		Description: `Lists stored images, oldest import first. --fields picks columns from
id, name, size, importtime, lastused, source and signedby. --sort orders the rows by
a comma-separated list of the same fields (the first deciding), --order=desc reverses
it, as rkt's image list. --format=json prints every field of every image for scripts
(on one line; json-pretty indents it), in the same order.`,
		Flags: []cli.Flag{
			formatFlag,
			&cli.BoolFlag{Name: "no-legend", Usage: "omit the header line"},
			&cli.BoolFlag{Name: "full", Usage: "print full IDs, exact sizes and RFC 3339 times"},
			&cli.StringFlag{Name: "fields", Value: defaultImageFields, Usage: "comma-separated columns to print"},
			&cli.StringFlag{Name: "sort", Value: "importtime", Usage: "comma-separated fields to sort by"},
			&cli.StringFlag{Name: "order", Value: "asc", Usage: "sort order: asc or desc"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			fields := strings.Split(c.String("fields"), ",")
			for i, f := range fields {
				fields[i] = strings.ToLower(strings.TrimSpace(f))
				if _, ok := imageFields[fields[i]]; !ok {
					return usageErrorf("image list: unknown field %q (want id, name, size, importtime, lastused, source, signedby)", f)
				}
			}
			s := openStoreReadOnly(c.Context, g)
			images, err := s.Images(c.Context)
			if err != nil {
				return err
			}
			if err := sortImages(images, c.String("sort"), c.String("order")); err != nil {
				return err
			}
			if isJSONFormat(format) {
				if images == nil {
					images = []*index.Image{}
				}
				return writeJSONAs(g.Stdout, images, format)
			}
			tw := tabwriter.NewWriter(g.Stdout, 0, 8, 2, ' ', 0)
			if !c.Bool("no-legend") {
				hs := make([]string, len(fields))
				for i, f := range fields {
					hs[i] = imageFields[f].header
				}
				_, _ = fmt.Fprintln(tw, strings.Join(hs, "\t"))
			}
			for _, im := range images {
				vs := make([]string, len(fields))
				for i, f := range fields {
					vs[i] = safetext.Escape(imageFields[f].value(im, c.Bool("full")))
				}
				_, _ = fmt.Fprintln(tw, strings.Join(vs, "\t"))
			}
			return tw.Flush()
		},
	}
}

func nameWithVersion(im *index.Image) string {
	if v := im.Labels["version"]; v != "" {
		return im.Name + ":" + v
	}
	return im.Name
}

func pick(full bool, a, b string) string {
	if full {
		return a
	}
	return b
}

func when(t time.Time, full bool) string {
	if full {
		return t.Format(time.RFC3339Nano)
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
