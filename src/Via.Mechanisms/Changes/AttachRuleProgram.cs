using System.Security.Cryptography;
using System.Text;
using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Cgroups;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Rules;

namespace Via.Mechanisms.Changes;

/// <summary>
/// A route's rule program (<see cref="RuleProgram"/>) and its three maps, attached to the root of
/// the cgroup2 hierarchy (BPF_CGROUP_INET_SOCK_CREATE, next to any other: BPF_F_ALLOW_MULTI). Like
/// the socket-mark program it is attached, not linked: it stays after via exits, and holds its maps,
/// which hold the rules. The root is never removed, so nothing else releases it: the route's
/// teardown (or <c>via gc</c>) detaches it.
/// <para>
/// Found again by its maps' names, "v" + <see cref="Owner"/> + <see cref="Nonce"/> + u|g|c: the nonce
/// is chosen (and journaled) before anything is made, so a via killed half-way leaves nothing the
/// journal cannot name; the owner (a hash of via's state directory) lets <c>via gc</c> of one state
/// directory sweep its own strays at the shared root and never another's (a test's, say).
/// </para>
/// </summary>
/// <param name="Owner">5 hex digits: <see cref="StateOwner"/> of the state directory that made it.</param>
/// <param name="Nonce">8 hex digits, this route's.</param>
/// <param name="NetnsCookie">The network namespace whose sockets it marks (<see cref="Namespaces.CurrentNetworkCookie"/>).</param>
public sealed record AttachRuleProgram(string Owner, string Nonce, uint Mark, ulong NetnsCookie) : HostChange
{
    public override string Command => $"bpftool cgroup attach / sock_create <{RuleProgram.Name}: mark=0x{Mark:x}, maps {Prefix}u|g|c> multi";
    public override string UndoCommand => $"bpftool cgroup detach / sock_create name {RuleProgram.Name} (maps {Prefix}*)";

    public static readonly ChangeCodec Codec = new("rule-program", c => new AttachRuleProgram(
        JsonFields.Need(c, "owner"), JsonFields.Need(c, "nonce"), c.GetProperty("mark").GetUInt32(), c.GetProperty("netnsCookie").GetUInt64()));

    public override string Kind => Codec.Kind;

    /// <summary>What its maps' names begin with.</summary>
    public string Prefix => "v" + Owner + Nonce;

    public override void Write(System.Text.Json.Utf8JsonWriter w)
    {
        w.WriteString("owner", Owner);
        w.WriteString("nonce", Nonce);
        w.WriteNumber("mark", Mark);
        w.WriteNumber("netnsCookie", NetnsCookie);
    }

    /// <summary>A new one for the route of mark <paramref name="mark"/>, in this network namespace.</summary>
    public static AttachRuleProgram Make(uint mark) =>
        new(StateOwner, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)), mark, Namespaces.CurrentNetworkCookie());

    /// <summary>5 hex digits of a hash of via's state directory: whose rule programs are whose at the shared root.</summary>
    public static string StateOwner => OwnerOf(Journal.StateDirectory);

    /// <summary>The owner tag of the state directory <paramref name="stateDirectory"/>.</summary>
    public static string OwnerOf(string stateDirectory) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(stateDirectory)))[..5];

    public override void Apply(Host host)
    {
        string root = CgroupPaths.Root();
        var maps = new List<SafeFd>();
        try
        {
            foreach (var kind in RuleProgram.MapKinds)
                maps.Add(BpfSyscall.CreateMap(BpfMapType.Hash, RuleProgram.KeySize(kind), 4, RuleProgram.MaxEntries, Prefix + RuleProgram.MapLetter(kind)));
            CgroupPrograms.Attach(root, BpfProgType.CgroupSock, BpfAttachType.CgroupInetSockCreate,
                RuleProgram.Instructions(Mark, NetnsCookie, maps[0].Value, maps[1].Value, maps[2].Value), RuleProgram.Name);
        }
        finally
        {
            // The attached program holds them now (or, refused, nothing does and they go).
            foreach (var m in maps) m.Dispose();
        }
    }

    public override bool Undo(Host host)
    {
        string root = CgroupPaths.Root();
        var ids = Attached(root).Where(p => p.Prefix == Prefix).Select(p => p.Id).ToList();
        CgroupPrograms.DetachIds(root, BpfAttachType.CgroupInetSockCreate, ids);
        return ids.Count > 0;
    }

    /// <summary>The map of <paramref name="kind"/> of this route's attached program, or null when it is not attached.</summary>
    public SafeFd? OpenMap(SelectorKind kind)
    {
        var program = Attached(CgroupPaths.Root()).FirstOrDefault(p => p.Prefix == Prefix);
        if (program is null) return null;
        string name = Prefix + RuleProgram.MapLetter(kind);
        foreach (uint id in program.MapIds)
        {
            var map = BpfSyscall.OpenMap(id);
            if (map is null) continue;
            if (BpfSyscall.MapName(map) == name) return map;
            map.Dispose();
        }
        return null;
    }

    /// <summary>One via_rule program attached at the root: its id, the prefix of its maps' names ("v" + owner + nonce), and their ids.</summary>
    public sealed record Found(uint Id, string Prefix, uint[] MapIds)
    {
        public string Owner => Prefix.Length >= 6 ? Prefix[1..6] : "";
    }

    /// <summary>Every via_rule program attached to the hierarchy's root <paramref name="root"/>.</summary>
    public static List<Found> Attached(string root)
    {
        var found = new List<Found>();
        using var cgroup = Cgroup2.OpenDirectory(root);
        foreach (uint id in BpfSyscall.Query(cgroup, BpfAttachType.CgroupInetSockCreate, root))
        {
            using var program = BpfSyscall.OpenProgram(id);
            if (program is null || BpfSyscall.ProgramName(program) != RuleProgram.Name) continue;
            var mapIds = BpfSyscall.ProgramMapIds(program);
            string prefix = "";
            foreach (uint mapId in mapIds)
            {
                using var map = BpfSyscall.OpenMap(mapId);
                if (map is not null && BpfSyscall.MapName(map) is { Length: 15 } name) { prefix = name[..14]; break; }
            }
            found.Add(new Found(id, prefix, mapIds));
        }
        return found;
    }
}
