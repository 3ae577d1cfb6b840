#!/usr/bin/python3
"""Extract the ELF kernel (vmlinux) embedded in an x86 bzImage (vmlinuz).

Why: under TCG most of the guest's boot time goes into the decompressor stub
of a bzImage.  QEMU can boot the uncompressed ELF directly through its PVH
entry point (Xen ELF note PHYS32_ENTRY), which skips that work.

How: a bzImage carries the compressed kernel somewhere after its setup code.
We look for the magic bytes of each compression format the kernel supports,
try to decompress from every hit, and keep the first result that is an
x86-64 ELF file.

Usage: extract-vmlinux.py VMLINUZ OUTPUT
Exits non-zero when no ELF kernel is found, or when the ELF lacks the PVH
entry note (QEMU refuses to boot such an ELF on x86).  Prints a one-line
report on success.
"""

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
import sys
import zlib

# (name, magic).  Order matters only for speed: Debian's kernels use xz.
MAGICS = [
    ("xz", b"\xfd7zXZ\x00"),
    ("gzip", b"\x1f\x8b\x08"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00"),
    ("lz4", b"\x02\x21\x4c\x18"),
]

XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4


def decompress(kind, data):
    """Decompress one stream starting at data[0]; trailing bytes are ignored.

    Returns None when the bytes are not a valid stream of that kind (a
    magic-byte hit can be a coincidence)."""
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
        if kind == "lzma":
            return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
        if kind == "gzip":
            # wbits 16+MAX: gzip header; stops at the end of the first member.
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data)
        if kind in ("zstd", "lz4"):
            # Not in this Python's standard library: use the command-line tool
            # when it is installed.  Both tolerate trailing garbage poorly, so
            # a failure here just means "try the next hit".
            tool = shutil.which(kind)
            if tool is None:
                return None
            res = subprocess.run([tool, "-d", "-c", "-q"], input=data,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
            return res.stdout or None
    except (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError):
        return None
    return None


def is_x86_64_elf(blob):
    # e_ident: magic, ELFCLASS64 (2), little endian (1); e_machine 62 = x86-64
    return (blob is not None and len(blob) > 64 and blob[:4] == b"\x7fELF"
            and blob[4] == 2 and blob[5] == 1
            and struct.unpack_from("<H", blob, 18)[0] == 62)


def has_pvh_note(elf):
    """True if a PT_NOTE segment holds the Xen PHYS32_ENTRY note (PVH)."""
    e_phoff, = struct.unpack_from("<Q", elf, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", elf, 54)
    for i in range(e_phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, e_phoff + i * e_phentsize)
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\x00")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            # name and descriptor are each padded to 4 bytes
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: extract-vmlinux.py VMLINUZ OUTPUT")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        image = f.read()

    for kind, magic in MAGICS:
        pos = image.find(magic)
        while pos != -1:
            elf = decompress(kind, image[pos:])
            if is_x86_64_elf(elf):
                if not has_pvh_note(elf):
                    sys.exit("extract-vmlinux: ELF kernel has no PVH entry note "
                             "(kernel built without CONFIG_PVH?)")
                with open(dst, "wb") as f:
                    f.write(elf)
                print("extract-vmlinux: %s stream at offset %d -> %d bytes ELF "
                      "with PVH entry note" % (kind, pos, len(elf)))
                return 0
            pos = image.find(magic, pos + 1)
    sys.exit("extract-vmlinux: no compressed ELF kernel found in %s" % src)


if __name__ == "__main__":
    sys.exit(main())
