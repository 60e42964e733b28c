package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strconv"
)

// Layout of the histogram, in pixels.
const (
	pngMarginLeft   = 70
	pngMarginRight  = 20
	pngMarginTop    = 20
	pngMarginBottom = 40
	pngPlotHeight   = 360
)

// histogramPNG draws one bar per bucket (one pixel wide), the bucket average as a green line and
// twice it as an orange one. Bars taller than yMax are cut at the top and drawn red. The y axis
// is labelled at 0, the average and yMax; the x axis every tickEvery buckets with tick/tickEvery
// (e.g. hours for per-minute buckets). Only the standard library: the digits are drawn from a
// 3x5 bitmap font below.
func histogramPNG(counts []int64, avg float64, yMax int64, tickEvery int) ([]byte, error) {
	var (
		colBackground = color.RGBA{255, 255, 255, 255}
		colAxis       = color.RGBA{40, 40, 40, 255}
		colBar        = color.RGBA{66, 110, 180, 255}
		colClipped    = color.RGBA{200, 40, 40, 255}
		colAverage    = color.RGBA{30, 150, 60, 255}
		colTwice      = color.RGBA{230, 140, 20, 255}
		colGrid       = color.RGBA{225, 225, 225, 255}
	)
	w := pngMarginLeft + len(counts) + pngMarginRight
	h := pngMarginTop + pngPlotHeight + pngMarginBottom
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), colBackground)
	x0, y0 := pngMarginLeft, pngMarginTop+pngPlotHeight // origin, bottom-left of the plot
	yOf := func(v float64) int {
		return y0 - int(v/float64(yMax)*float64(pngPlotHeight)+0.5)
	}
	// Hour grid.
	for i := 0; i <= len(counts); i += tickEvery {
		fill(img, image.Rect(x0+i, pngMarginTop, x0+i+1, y0), colGrid)
	}
	for i, c := range counts {
		col, v := colBar, c
		if c > yMax {
			col, v = colClipped, yMax
		}
		fill(img, image.Rect(x0+i, yOf(float64(v)), x0+i+1, y0), col)
	}
	for _, l := range []struct {
		v   float64
		col color.RGBA
	}{{avg, colAverage}, {2 * avg, colTwice}} {
		if y := yOf(l.v); y >= pngMarginTop {
			fill(img, image.Rect(x0, y, x0+len(counts), y+1), l.col)
		}
	}
	// Axes, ticks and labels.
	fill(img, image.Rect(x0-1, pngMarginTop, x0, y0+1), colAxis)
	fill(img, image.Rect(x0-1, y0, x0+len(counts), y0+1), colAxis)
	for i := 0; i <= len(counts); i += tickEvery {
		fill(img, image.Rect(x0+i, y0, x0+i+1, y0+6), colAxis)
		label := strconv.Itoa(i / tickEvery)
		drawText(img, x0+i-textWidth(label)/2, y0+10, label, colAxis)
	}
	for _, v := range []struct {
		v   int64
		col color.RGBA
	}{{0, colAxis}, {int64(avg + 0.5), colAverage}, {yMax, colAxis}} {
		label := strconv.FormatInt(v.v, 10)
		y := yOf(float64(v.v))
		fill(img, image.Rect(x0-6, y, x0-1, y+1), v.col)
		drawText(img, x0-10-textWidth(label), y-pngGlyphH*pngScale/2, label, v.col)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// A 3x5 bitmap font for digits, each row 3 bits, most significant on the left, drawn at
// pngScale.
const (
	pngGlyphW = 3
	pngGlyphH = 5
	pngScale  = 2
)

func glyph(r rune) [pngGlyphH]uint8 {
	switch r {
	case '0':
		return [5]uint8{7, 5, 5, 5, 7}
	case '1':
		return [5]uint8{2, 6, 2, 2, 7}
	case '2':
		return [5]uint8{7, 1, 7, 4, 7}
	case '3':
		return [5]uint8{7, 1, 7, 1, 7}
	case '4':
		return [5]uint8{5, 5, 7, 1, 1}
	case '5':
		return [5]uint8{7, 4, 7, 1, 7}
	case '6':
		return [5]uint8{7, 4, 7, 5, 7}
	case '7':
		return [5]uint8{7, 1, 1, 1, 1}
	case '8':
		return [5]uint8{7, 5, 7, 5, 7}
	case '9':
		return [5]uint8{7, 5, 7, 1, 7}
	default:
		return [5]uint8{}
	}
}

func textWidth(s string) int { return len(s) * (pngGlyphW + 1) * pngScale }

func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for i, r := range s {
		g := glyph(r)
		gx := x + i*(pngGlyphW+1)*pngScale
		for row := range pngGlyphH {
			for col := range pngGlyphW {
				if g[row]&(1<<(pngGlyphW-1-col)) != 0 {
					fill(img, image.Rect(gx+col*pngScale, y+row*pngScale, gx+(col+1)*pngScale, y+(row+1)*pngScale), c)
				}
			}
		}
	}
}
