using System;
using System.IO;
using System.Runtime.InteropServices;

namespace PipelineDsl.IO;

/// <summary>
/// Whether a path is a regular file. .NET reports a FIFO, a socket or a device as an ordinary file (and
/// opening a FIFO for reading blocks until something writes to it), so the input and checkpoint readers ask
/// the kernel first. On Linux this is <c>statx</c>, whose layout is the same on every architecture; elsewhere
/// (where such files in a data directory are rarer) every existing non-directory counts as regular.
/// </summary>
internal static class FileKind
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const int ModeOffset = 28; // struct statx: stx_mask, stx_blksize (u32), stx_attributes (u64), stx_nlink, stx_uid, stx_gid (u32), stx_mode (u16)
    private static bool _statxMissing;

    /// <summary>True when <paramref name="path"/> (following symbolic links) is a regular file.</summary>
    public static bool IsRegularFile(string path)
    {
        if (!OperatingSystem.IsLinux() || _statxMissing) return File.Exists(path);
        var buffer = new byte[256];
        try
        {
            if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0) return File.Exists(path);
        }
        catch (EntryPointNotFoundException)
        {
            _statxMissing = true; // a C library older than glibc 2.28
            return File.Exists(path);
        }

        ushort mode = BitConverter.ToUInt16(buffer, ModeOffset);
        return (mode & 0xF000) == 0x8000; // S_IFREG
    }

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirFd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);
}
