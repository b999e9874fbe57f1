package capture

// A 5x7 bitmap font with just the characters the test source's clock
// needs. Each glyph is seven rows, top first; bit 4 is the leftmost column.
const (
	glyphW = 5
	glyphH = 7
	// A character cell adds one column and two rows of spacing.
	cellW = glyphW + 1
	cellH = glyphH + 2
)

var font = map[byte][glyphH]uint8{
	'0': {0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110},
	'1': {0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110},
	'2': {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111},
	'3': {0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110},
	'4': {0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010},
	'5': {0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110},
	'6': {0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110},
	'7': {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000},
	'8': {0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110},
	'9': {0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100},
	':': {0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000},
	'.': {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100},
	'#': {0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010},
	' ': {},
}

// drawText draws text into a luma plane with its top-left corner at
// (x, y), each font pixel a scale x scale block of value ink. Characters
// outside the font are drawn as blanks and anything outside the plane is
// clipped.
func drawText(p plane, x, y, scale int, text string, ink byte) {
	for i := 0; i < len(text); i++ {
		g := font[text[i]]
		for row := 0; row < glyphH; row++ {
			for col := 0; col < glyphW; col++ {
				if g[row]&(1<<(glyphW-1-col)) == 0 {
					continue
				}
				px := x + (i*cellW+col)*scale
				py := y + row*scale
				p.fill(px, py, px+scale, py+scale, ink)
			}
		}
	}
}

// readText is drawText's inverse, used by tests to check what the clock
// shows: it samples the centre of each font pixel of n characters and
// looks the bitmaps up in the font ('?' when nothing matches).
func readText(p plane, x, y, scale, n int, threshold byte) string {
	out := make([]byte, n)
	for i := range out {
		var g [glyphH]uint8
		for row := 0; row < glyphH; row++ {
			for col := 0; col < glyphW; col++ {
				px := x + (i*cellW+col)*scale + scale/2
				py := y + row*scale + scale/2
				if px < p.w && py < p.h && p.pix[py*p.stride+px] > threshold {
					g[row] |= 1 << (glyphW - 1 - col)
				}
			}
		}
		out[i] = '?'
		for c, want := range font {
			if want == g {
				out[i] = c
				break
			}
		}
	}
	return string(out)
}
