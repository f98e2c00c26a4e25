using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using System.Text.RegularExpressions;
using Xunit;

namespace DistributedBackprop.Node.Tests.Architecture;

/// <summary>
/// What may depend on what (docs/ARCHITECTURE.md): Core is pure — no Akka, no Cluster, no Node — so every distributed
/// result has a single-process oracle; Cluster never reaches up into the command line; the message contracts know
/// nothing of how they travel; only the command line words errors with flags and picks exit codes.
/// </summary>
public sealed class LayeringTests
{
    private static readonly Assembly Core = typeof(Core.Training.TrainingSetup).Assembly;
    private static readonly Assembly Cluster = typeof(Cluster.NodeContext).Assembly;

    private static IEnumerable<string> References(Assembly assembly) =>
        assembly.GetReferencedAssemblies().Select(a => a.Name!).Order(StringComparer.Ordinal);

    [Fact]
    public void Core_references_neither_akka_nor_the_cluster_nor_the_command_line()
    {
        var forbidden = References(Core).Where(name => name.StartsWith("Akka", StringComparison.Ordinal)
                                                       || name is "DistributedBackprop.Cluster" or "distbp").ToList();
        Assert.True(forbidden.Count == 0, $"Core references {string.Join(", ", forbidden)}");
    }

    [Fact]
    public void The_contracts_reference_no_transport_type()
    {
        const string Contracts = "DistributedBackprop.Cluster.Contracts";
        const string Transport = "DistributedBackprop.Cluster.Transport";
        var contracts = Cluster.GetTypes().Where(t => t.Namespace == Contracts).ToList();
        Assert.Contains(contracts, t => t.Name == "SliceResult"); // the rule reads the real room
        var uses = contracts.SelectMany(t => UsedTypes(t).Select(used => (t, used)))
            .Where(p => p.used.Namespace == Transport)
            .Select(p => $"{p.t.Name} uses {p.used.Name}")
            .Distinct()
            .ToList();
        Assert.True(uses.Count == 0, string.Join("; ", uses));
    }

    /// <summary>Every type a type's signature and body mention: base types, fields, properties, method signatures and
    /// the types its method bodies refer to (locals, calls, constructions).</summary>
    private static IEnumerable<Type> UsedTypes(Type type)
    {
        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static
                                 | BindingFlags.DeclaredOnly;
        var used = new List<Type?> { type.BaseType };
        used.AddRange(type.GetInterfaces());
        used.AddRange(type.GetFields(All).Select(f => f.FieldType));
        used.AddRange(type.GetProperties(All).Select(p => p.PropertyType));
        foreach (var method in type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All)))
        {
            if (method is MethodInfo info)
            {
                used.Add(info.ReturnType);
            }
            used.AddRange(method.GetParameters().Select(p => p.ParameterType));
            var body = method.GetMethodBody();
            if (body is not null)
            {
                used.AddRange(body.LocalVariables.Select(l => l.LocalType));
                used.AddRange(ReferencedTypes(method, body.GetILAsByteArray() ?? []));
            }
        }
        return used.OfType<Type>().SelectMany(t => t.IsGenericType ? t.GetGenericArguments().Append(t) : [t]);
    }

    /// <summary>The declaring types of every member and type token in an IL body (a 4-byte token after any opcode).</summary>
    private static IEnumerable<Type> ReferencedTypes(MethodBase method, byte[] il)
    {
        var found = new List<Type>();
        for (var i = 0; i + 4 < il.Length; i++)
        {
            var token = BitConverter.ToInt32(il, i + 1);
            var table = token >> 24;
            if (table is not (0x01 or 0x02 or 0x04 or 0x06 or 0x0A or 0x1B or 0x2B))
            {
                continue;
            }
            try
            {
                var member = method.Module.ResolveMember(token, method.DeclaringType?.GetGenericArguments(),
                    method.IsGenericMethod ? method.GetGenericArguments() : null);
                if (member is Type t)
                {
                    found.Add(t);
                }
                else if (member?.DeclaringType is { } declaring)
                {
                    found.Add(declaring);
                }
            }
            catch (Exception e) when (e is ArgumentException or BadImageFormatException or MissingMemberException or TypeLoadException)
            {
                // not a token at this offset
            }
        }
        return found;
    }

    [Fact]
    public void Cluster_does_not_reference_the_command_line()
    {
        Assert.DoesNotContain("distbp", References(Cluster));
        Assert.Contains("DistributedBackprop.Core", References(Cluster)); // the rule reads the real references
    }

    /// <summary>A flag (<c>--lr</c>) or a command line (<c>distbp simulate</c>) in a string literal.</summary>
    private static readonly Regex CommandLineText = new(@"(?<![\w-])--[a-z][a-z-]*|\bdistbp (train|simulate|node|eval|predict|export|report|probe)\b");

    [Fact]
    public void Core_and_cluster_carry_no_command_line_text()
    {
        var found = new[] { Core, Cluster }
            .SelectMany(assembly => StringLiterals(assembly).Where(text => CommandLineText.IsMatch(text))
                .Select(text => $"{assembly.GetName().Name}: \"{text}\""))
            .ToList();
        Assert.True(found.Count == 0, string.Join("\n", found));
        // The rule reads the real literals: the command line's own assembly has flags in them.
        Assert.Contains(StringLiterals(typeof(Node.Cli.TrainingOptionsBinder).Assembly), text => CommandLineText.IsMatch(text));
    }

    [Fact]
    public void Only_the_command_line_has_exit_codes()
    {
        var found = new[] { Core, Cluster }.SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                .Where(m => m.Name.Contains("ExitCode", StringComparison.Ordinal)).Select(m => $"{t.FullName}.{m.Name}"))
            .ToList();
        Assert.True(found.Count == 0, string.Join(", ", found));
    }

    /// <summary>Every string literal compiled into an assembly (its user-string heap).</summary>
    private static List<string> StringLiterals(Assembly assembly)
    {
        using var pe = new PEReader(File.OpenRead(assembly.Location));
        var metadata = pe.GetMetadataReader();
        var literals = new List<string>();
        for (var handle = MetadataTokens.UserStringHandle(1); !handle.IsNil; handle = metadata.GetNextHandle(handle))
        {
            literals.Add(metadata.GetUserString(handle));
        }
        return literals;
    }
}
