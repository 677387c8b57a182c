using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>Every mechanism via offers, in the order <c>--method auto</c> tries them. One line each.</summary>
public static class Registry
{
    public static readonly IReadOnlyList<IMechanism> All =
    [
        new Cgroup.CgroupBpfMechanism(),
        new Seccomp.SeccompMechanism(),
        new Preload.PreloadMechanism(),
        new Netns.NetnsMechanism(),
        new Nft.NftMechanism(),
        new Netcls.NetclsMechanism(),
    ];

    /// <summary>The mechanism of that name, or null.</summary>
    public static IMechanism? Find(string name) => All.FirstOrDefault(m => m.Name == name);

    /// <summary>The names, for help and errors: "cgroup, seccomp, preload, netns".</summary>
    public static string Names => string.Join(", ", All.Select(m => m.Name));
}

/// <summary>Reads any change back from the journal: the engine's own kinds, then each mechanism's.</summary>
public static class ChangeKinds
{
    /// <summary>The kinds the engine itself makes for every route.</summary>
    public static readonly IReadOnlyList<ChangeCodec> Core =
        [AddRoute.Codec, AddRule.Codec, CreateCgroup.Codec, MountCgroup2.Codec, Guard.AttachEgressGuard.Codec, NftTable.Codec, AttachRuleProgram.Codec, AddPortRule.Codec];

    private static readonly Dictionary<string, ChangeCodec> ByKind = Core.Concat(Registry.All.SelectMany(m => m.ChangeKinds)).ToDictionary(c => c.Kind);

    public static HostChange Read(System.Text.Json.JsonElement c)
    {
        string kind = JsonFields.Need(c, "kind");
        return ByKind.TryGetValue(kind, out var codec) ? codec.Read(c) : throw new NotSupportedException($"unknown change kind '{kind}'");
    }
}
