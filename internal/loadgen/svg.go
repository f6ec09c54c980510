package loadgen

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Plots are drawn as inline SVG by hand: a line chart with axes, grid, ticks and a legend is
// all the reports need, and it keeps them free of scripts and external resources.

// Line is one series of a Chart.
type Line struct {
	Name string
	X, Y []float64
}

// Tick is a labelled position on an axis.
type Tick struct {
	V     float64
	Label string
}

// Chart is a line chart.
type Chart struct {
	Title, XLabel, YLabel string
	Lines                 []Line
	XTicks                []Tick // nil: chosen from the data
	LogY                  bool   // logarithmic y axis (values ≤ 0 are left out)
	Width, Height         int    // pixels; default 760 × 340
}

// palette: distinguishable, also in print.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"}

// SVG renders the chart as a standalone <svg> element.
func (c *Chart) SVG() string {
	w, h := c.Width, c.Height
	if w == 0 {
		w = 760
	}
	if h == 0 {
		h = 340
	}
	rows := (len(c.Lines) + 3) / 4 // of the legend, four entries a row
	const left, right, top = 70, 40, 34
	bottom := 50 + 16*max(rows, 1)
	pw, ph := float64(w-left-right), float64(h-top-bottom)

	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, l := range c.Lines {
		for i := range l.X {
			y := l.Y[i]
			if c.LogY && y <= 0 {
				continue
			}
			xmin, xmax = math.Min(xmin, l.X[i]), math.Max(xmax, l.X[i])
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`, w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`, left, esc(c.Title))
	if math.IsInf(xmin, 1) { // nothing to draw
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#777">no data</text></svg>`, left, top+int(ph/2))
		return b.String()
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	// Given ticks widen the x range to the nearest tick on each side of the data, no further.
	lo, hi := math.Inf(-1), math.Inf(1)
	for _, t := range c.XTicks {
		if t.V <= xmin {
			lo = math.Max(lo, t.V)
		}
		if t.V >= xmax {
			hi = math.Min(hi, t.V)
		}
	}
	if !math.IsInf(lo, 0) {
		xmin = lo
	}
	if !math.IsInf(hi, 0) {
		xmax = hi
	}
	var yticks []Tick
	var ty func(float64) float64 // value → fraction of the plot height from the bottom
	if c.LogY {
		lo, hi := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if hi == lo {
			hi = lo + 1
		}
		yticks = logTicks(lo, hi)
		ty = func(v float64) float64 { return (math.Log10(v) - lo) / (hi - lo) }
	} else {
		lo, hi := math.Min(0, ymin), ymax
		if hi <= lo {
			hi = lo + 1
		}
		yticks = linearTicks(lo, hi)
		hi = math.Max(hi, yticks[len(yticks)-1].V)
		ty = func(v float64) float64 { return (v - lo) / (hi - lo) }
	}
	px := func(x float64) float64 { return float64(left) + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return float64(top) + ph - ty(y)*ph }

	xticks := c.XTicks
	if xticks == nil {
		xticks = linearTicks(xmin, xmax)
	}
	b.WriteString(`<g stroke="#ddd">`)
	for _, t := range yticks {
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f"/>`, left, float64(left)+pw, py(t.V), py(t.V))
	}
	for _, t := range xticks {
		if t.V >= xmin && t.V <= xmax {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"/>`, px(t.V), px(t.V), top, float64(top)+ph)
		}
	}
	b.WriteString(`</g><g fill="#333">`)
	for _, t := range yticks {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, left-6, py(t.V), esc(t.Label))
	}
	for _, t := range xticks {
		if t.V >= xmin && t.V <= xmax {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, px(t.V), float64(top)+ph+16, esc(t.Label))
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, float64(left)+pw/2, float64(top)+ph+34, esc(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, float64(top)+ph/2, esc(c.YLabel))
	b.WriteString(`</g>`)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`, left, top, pw, ph)

	for i, l := range c.Lines {
		color := palette[i%len(palette)]
		var pts []string
		for j := range l.X {
			if c.LogY && l.Y[j] <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(l.X[j]), py(l.Y[j])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, strings.Join(pts, " "))
		if len(pts) == 1 { // a single point would not show as a line
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, strings.Split(pts[0], ",")[0], strings.Split(pts[0], ",")[1], color)
		}
		// Legend below the plot, left to right.
		lx := left + (i%4)*((w-left-right)/4)
		ly := h - 12 - (rows-1-i/4)*16
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`, lx, lx+18, ly-4, ly-4, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, lx+24, ly, esc(l.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// linearTicks returns about five round ticks covering [lo, hi].
func linearTicks(lo, hi float64) []Tick {
	step := niceStep((hi - lo) / 5)
	var ts []Tick
	for k := math.Floor(lo / step); ; k++ {
		v := k * step
		if step < 1 { // keep 0.1 × 3 from printing as 0.30000000000000004
			v, _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
		}
		ts = append(ts, Tick{V: v, Label: fmtTick(v)})
		if v >= hi || len(ts) > 20 {
			break
		}
	}
	return ts
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// logTicks returns ticks at 1, 2 and 5 times each power of ten from 10^lo to 10^hi (only the
// powers when the range spans many decades).
func logTicks(lo, hi float64) []Tick {
	mults := []float64{1, 2, 5}
	if hi-lo > 3 {
		mults = []float64{1}
	}
	var ts []Tick
	for e := lo; e <= hi; e++ {
		for _, m := range mults {
			v := m * math.Pow(10, e)
			if math.Log10(v) > hi+1e-9 {
				break
			}
			ts = append(ts, Tick{V: v, Label: fmtTick(v)})
		}
	}
	return ts
}

func fmtTick(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// PercentileTicks label the x axis of a latency-by-percentile chart, whose x is -log10(1-q).
var PercentileTicks = []Tick{{0, "0%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}, {6, "99.9999%"}}

// PercentileX places percentile q (0..100) on that axis; 100 (the maximum) goes just right of
// the last finite point, at most xAfter.
func PercentileX(q, xAfter float64) float64 {
	if q >= 100 {
		return xAfter
	}
	return -math.Log10(1 - q/100)
}

// LatencyLine turns a spectrum into a line in milliseconds against PercentileTicks.
func LatencyLine(name string, sp []SpectrumPoint) Line {
	l := Line{Name: name}
	last := 0.0
	for _, p := range sp {
		if p.Percentile < 100 {
			last = PercentileX(p.Percentile, 0)
		}
	}
	for _, p := range sp {
		l.X = append(l.X, PercentileX(p.Percentile, last+0.1))
		l.Y = append(l.Y, p.Micros/1e3)
	}
	return l
}
