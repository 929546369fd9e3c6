#!/usr/bin/env python3
"""Check a screenshot taken by headless Chromium, without any image library.

    png-check.py IMAGE WIDTH HEIGHT [--rows N] [--color RRGGBB:MIN[:TOLERANCE]]...

The image must be a PNG of WIDTH x HEIGHT with more than N distinct pixel rows (a blank page
has one), and for each --color at least MIN pixels within TOLERANCE (default 6) of that colour
on every channel.
Prints the count of each colour; exits 1 with the reason when a check fails.
"""
import struct
import sys
import zlib


def pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    bpp = {2: 3, 6: 4}[data[25]]
    idat = b""
    i = 8
    while i < len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        if data[i + 4:i + 8] == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    raw = zlib.decompress(idat)
    stride = len(raw) // height
    prev = bytearray(stride - 1)
    rows = []
    for r in range(height):
        f, line = raw[r * stride], bytearray(raw[r * stride + 1:(r + 1) * stride])
        for x in range(len(line)):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(bytes(line))
    return width, height, bpp, rows


def main():
    args = sys.argv[1:]
    path, want_w, want_h = args[0], int(args[1]), int(args[2])
    min_rows, colors = 1, []
    rest = args[3:]
    while rest:
        if rest[0] == "--rows":
            min_rows = int(rest[1])
        elif rest[0] == "--color":
            hexa, least, *tol = rest[1].split(":")
            colors.append((bytes.fromhex(hexa), int(least), int(tol[0]) if tol else 6))
        else:
            sys.exit(f"unknown argument {rest[0]}")
        rest = rest[2:]
    width, height, bpp, rows = pixels(path)
    if (width, height) != (want_w, want_h):
        sys.exit(f"{path}: {width}x{height}, not {want_w}x{want_h}")
    if len(set(rows)) <= min_rows:
        sys.exit(f"{path}: {len(set(rows))} distinct rows: it looks empty")
    for rgb, least, tol in colors:
        n = 0
        for line in rows:
            for x in range(0, len(line), bpp):
                if all(abs(line[x + k] - rgb[k]) < tol for k in range(3)):
                    n += 1
        print(f"{path}: {n} pixels of #{rgb.hex()}")
        if n < least:
            sys.exit(f"{path}: {n} pixels of #{rgb.hex()}, fewer than {least}")


main()
