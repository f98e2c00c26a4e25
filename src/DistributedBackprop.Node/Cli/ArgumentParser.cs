using System.Globalization;
using DistributedBackprop.Core;

namespace DistributedBackprop.Node.Cli;

/// <summary>
/// A small, strict parser: <c>--name value</c>, <c>--name=value</c> and boolean switches. Unknown options, missing values
/// and values of the wrong type are user errors that name the option.
/// </summary>
public sealed class ParsedArguments
{
    private readonly Dictionary<string, string?> _values;
    private readonly string _command;

    private ParsedArguments(string command, Dictionary<string, string?> values)
    {
        _command = command;
        _values = values;
    }

    public bool Has(string name) => _values.ContainsKey(name);

    public bool Flag(string name) => _values.ContainsKey(name);

    public string? String(string name) => _values.TryGetValue(name, out var v) ? v : null;

    public int Int(string name, int fallback)
    {
        if (String(name) is not { } text)
        {
            return fallback;
        }
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new DistbpInputException($"--{name}: '{text}' is not a whole number.");
    }

    public ulong ULong(string name, ulong fallback)
    {
        if (String(name) is not { } text)
        {
            return fallback;
        }
        return ulong.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new DistbpInputException($"--{name}: '{text}' is not a non-negative whole number.");
    }

    public float Float(string name, float fallback)
    {
        if (String(name) is not { } text)
        {
            return fallback;
        }
        return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && float.IsFinite(value)
            ? value
            : throw new DistbpInputException($"--{name}: '{text}' is not a finite number.");
    }

    /// <summary>
    /// Parses <paramref name="args"/> against the options a command accepts (switches take no value; an option in
    /// <paramref name="optionalValue"/>, like <c>--dashboard [PORT]</c>, takes the next argument unless it is an option).
    /// </summary>
    public static ParsedArguments Parse(string command, IReadOnlyList<string> args, IReadOnlySet<string> valued,
        IReadOnlySet<string> switches, IReadOnlySet<string>? optionalValue = null)
    {
        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                throw new DistbpInputException($"{command}: unexpected argument '{arg}'; options look like --name value (see distbp {command} --help).");
            }
            var name = arg[2..];
            string? inline = null;
            var eq = name.IndexOf('=');
            if (eq >= 0)
            {
                inline = name[(eq + 1)..];
                name = name[..eq];
            }
            if (switches.Contains(name))
            {
                if (inline is not null)
                {
                    throw new DistbpInputException($"--{name}: is a switch and takes no value.");
                }
                if (values.ContainsKey(name))
                {
                    throw new DistbpInputException($"--{name}: given twice.");
                }
                values[name] = null;
                continue;
            }
            if (optionalValue?.Contains(name) == true && inline is null
                && (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal)))
            {
                if (values.ContainsKey(name))
                {
                    throw new DistbpInputException($"--{name}: given twice.");
                }
                values[name] = null;
                continue;
            }
            if (!valued.Contains(name) && optionalValue?.Contains(name) != true)
            {
                throw new DistbpInputException($"{command}: unknown option '--{name}' (see distbp {command} --help).");
            }
            if (inline is null)
            {
                if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    throw new DistbpInputException($"--{name}: needs a value.");
                }
                inline = args[++i];
            }
            if (string.IsNullOrWhiteSpace(inline))
            {
                throw new DistbpInputException($"--{name}: needs a value, not an empty one.");
            }
            if (values.ContainsKey(name))
            {
                throw new DistbpInputException($"--{name}: given twice.");
            }
            values[name] = inline;
        }
        return new ParsedArguments(command, values);
    }

    public override string ToString() => _command;
}
