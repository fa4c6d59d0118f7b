using System.Globalization;

namespace LoQT.Quantization;

/// <summary>Formats doubles the way Python's <c>repr</c> (and so <c>json.dumps</c>) does, so written JSON matches bitsandbytes byte for byte.</summary>
internal static class PythonFloat
{
    /// <summary>Shortest round-trip digits; positional for exponents -4..15, else <c>d.ddde±XX</c>; integral values keep ".0".</summary>
    public static string Repr(double value)
    {
        if (double.IsNaN(value))
        {
            return "NaN";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "Infinity" : "-Infinity";
        }

        if (value == 0)
        {
            return double.IsNegative(value) ? "-0.0" : "0.0";
        }

        // .NET's "R" gives the shortest digits that round-trip, as Python's repr does; only the layout differs.
        var shortest = value.ToString("R", CultureInfo.InvariantCulture);
        var negative = shortest.StartsWith('-');
        var (digits, exponent) = Decompose(negative ? shortest[1..] : shortest);
        string text;
        if (exponent is >= -4 and < 16)
        {
            if (exponent >= digits.Length - 1)
            {
                text = digits + new string('0', exponent - digits.Length + 1) + ".0";
            }
            else if (exponent >= 0)
            {
                text = digits[..(exponent + 1)] + "." + digits[(exponent + 1)..];
            }
            else
            {
                text = "0." + new string('0', -exponent - 1) + digits;
            }
        }
        else
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            text = mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
        }

        return negative ? "-" + text : text;
    }

    /// <summary>Significant digits (no leading or trailing zeros) and the decimal exponent of the first digit.</summary>
    private static (string Digits, int Exponent) Decompose(string text)
    {
        var exponent = 0;
        var e = text.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(text[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }

        var point = text.IndexOf('.');
        var integerPart = point < 0 ? text : text[..point];
        var fraction = point < 0 ? string.Empty : text[(point + 1)..];
        var all = integerPart + fraction;
        var firstNonZero = all.TakeWhile(c => c == '0').Count();
        var digits = all[firstNonZero..].TrimEnd('0');
        exponent += integerPart.Length - 1 - firstNonZero;
        return (digits.Length == 0 ? "0" : digits, exponent);
    }
}
