// The input line: the same commands as the terminal client (see chatrpc/tui.py).

export const COMMANDS = {
  join: ["/join ROOM", "join ROOM and talk there"],
  leave: ["/leave [ROOM]", "leave ROOM (default: the current room)"],
  switch: ["/switch ROOM", "talk in ROOM, one you have joined"],
  msg: ["/msg USER TEXT", "send a direct message to USER"],
  me: ["/me TEXT", "say what you are doing: * you TEXT"],
  who: ["/who [ROOM]", "who is online in ROOM (default: the current room)"],
  rooms: ["/rooms", "list the rooms on the server"],
  history: ["/history [N]", "N older messages of this conversation (default 20)"],
  help: ["/help", "this list"],
  quit: ["/quit", "sign out"],
};

export const ALIASES = { part: "leave", names: "who", list: "rooms", exit: "quit", query: "msg" };

export class CommandError extends Error {}

/** A room or user name as the server stores it: NFKC, lower case, no leading # or @. */
export function canonical(name) {
  const n = name.normalize("NFKC").trim().toLowerCase();
  return n.startsWith("#") || n.startsWith("@") ? n.slice(1) : n;
}

/** Parses one line: null for a blank line, else {name, target, text, count}. */
export function parseLine(line) {
  const text = line.replace(/[\r\n]+$/, "");
  if (!text.trim()) return null;
  if (!text.startsWith("/")) return { name: "say", text };
  if (text.startsWith("//")) return { name: "say", text: text.slice(1) };
  const body = text.slice(1);
  const space = body.search(/\s/);
  const head = space < 0 ? body : body.slice(0, space);
  const rest = space < 0 ? "" : body.slice(space).trim();
  const name = ALIASES[head.toLowerCase()] || head.toLowerCase();
  if (!Object.hasOwn(COMMANDS, name)) {
    throw new CommandError(`unknown command /${head}: /help lists the commands`);
  }
  const usage = `usage: ${COMMANDS[name][0]}`;
  const words = rest.split(/\s+/).filter(Boolean);
  switch (name) {
    case "join":
    case "switch":
      if (words.length !== 1 || !canonical(words[0])) throw new CommandError(usage);
      return { name, target: canonical(words[0]) };
    case "leave":
    case "who":
      if (words.length > 1) throw new CommandError(usage);
      return { name, target: words.length ? canonical(words[0]) : "" };
    case "msg": {
      const m = rest.match(/^(\S+)\s+([\s\S]+)$/);
      if (!m || !canonical(m[1])) throw new CommandError(usage);
      return { name, target: canonical(m[1]), text: m[2] };
    }
    case "me":
      if (!rest) throw new CommandError(usage);
      return { name, text: `/me ${rest}` };
    case "history": {
      if (words.length > 1 || (words.length && !/^\d+$/.test(words[0]))) {
        throw new CommandError(usage);
      }
      return { name, count: words.length ? Number(words[0]) : 20 };
    }
    default:
      if (words.length) throw new CommandError(usage);
      return { name };
  }
}

export function helpLines() {
  return [
    ...Object.values(COMMANDS).map(([usage, what]) => `${usage.padEnd(16)} ${what}`),
    "Any other line goes to the current conversation; start it with // to send a leading /.",
  ];
}
