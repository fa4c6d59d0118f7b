using System.Globalization;

namespace LoQT.Training;

/// <summary>Resident memory of this process, as the kernel accounts it (what "fits in 24 GiB" is about).</summary>
public static class ProcessMemory
{
    /// <summary>Current resident set size in bytes (<c>VmRSS</c>), or the managed working set where /proc is absent.</summary>
    public static long CurrentBytes => ReadStatusField("VmRSS:") ?? Environment.WorkingSet;

    /// <summary>Peak resident set size in bytes since start or the last <see cref="ResetPeak"/> (<c>VmHWM</c>).</summary>
    public static long PeakBytes => ReadStatusField("VmHWM:") ?? Environment.WorkingSet;

    /// <summary>Resets the kernel's peak RSS mark to the current RSS (Linux: writes 5 to <c>/proc/self/clear_refs</c>).</summary>
    /// <returns>False where the kernel does not allow it; the peak then counts from process start.</returns>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Formats a byte count with binary units (KiB, MiB, GiB), invariant culture.</summary>
    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return value.ToString(unit == 0 ? "0" : "0.00", CultureInfo.InvariantCulture) + " " + units[unit];
    }

    private static long? ReadStatusField(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024; // the kernel reports kB
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }
}
