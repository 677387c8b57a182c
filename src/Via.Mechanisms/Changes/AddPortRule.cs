using System.Text.Json;
using Via.Kernel.Netlink;

namespace Via.Mechanisms.Changes;

/// <summary>
/// The policy-routing rule of a standing destination-port rule (<c>via rule add --dport tcp:3306</c>):
/// <c>ip rule add pref P ipproto tcp dport 3306 lookup T proto via</c>. Made and undone as an
/// <see cref="AddRule"/>, but a kind of its own: it is not part of the route's routing, which its
/// watcher re-plans from IFACE (and would take for a rule of another time, and remove).
/// </summary>
public sealed record AddPortRule(Rule Rule) : HostChange
{
    private AddRule Plain => new(Rule);

    public override string Command => Plain.Command;
    public override string UndoCommand => Plain.UndoCommand;

    public static readonly ChangeCodec Codec = new("port-rule", c => new AddPortRule(((AddRule)AddRule.Codec.Read(c)).Rule));

    public override string Kind => Codec.Kind;

    public override void Write(Utf8JsonWriter w) => Plain.Write(w);

    public override void Apply(Host host) => Plain.Apply(host);
    public override bool Undo(Host host) => Plain.Undo(host);
    public override RtnlRequest ApplyRequest => Plain.ApplyRequest;
    public override RtnlRequest UndoRequest => Plain.UndoRequest;
}
