// simnet's stand-in for the node's Rhino runner of a MiniDapp's service.js (ServiceJSRunner + MDSJS).
//
// Run by Node.js as `node service-shim.js <dapp folder> <read fd> <write fd>`; simnet talks to it over those two
// pipes, one JSON object per line. service.js runs in a fresh context that holds only `MDS` and the standard
// objects, as in Rhino (no require, no console, no timers). Every MDS call is synchronous, as in Rhino: the shim
// writes {"t":"req","f":function,"d":data} and blocks on the reply {"t":"reply","r":text} before the callback
// runs. simnet sends {"t":"event","m":message} one at a time and waits for {"t":"done"} before the next.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const [folder, readArg, writeArg] = process.argv.slice(2);
const readFd = Number(readArg);
const writeFd = Number(writeArg);
let buffered = Buffer.alloc(0);

function send(obj) {
  fs.writeSync(writeFd, JSON.stringify(obj) + "\n");
}

function readLine() {
  for (;;) {
    const end = buffered.indexOf(10);
    if (end >= 0) {
      const line = buffered.subarray(0, end).toString("utf8");
      buffered = buffered.subarray(end + 1);
      return line;
    }
    const chunk = Buffer.alloc(65536);
    let count;
    try {
      count = fs.readSync(readFd, chunk, 0, chunk.length, null);
    } catch (err) {
      if (err.code === "EAGAIN") continue;
      throw err;
    }
    if (count === 0) process.exit(0);
    buffered = Buffer.concat([buffered, chunk.subarray(0, count)]);
  }
}

function call(fn, data) {
  send({ t: "req", f: fn, d: String(data) });
  return JSON.parse(readLine()).r;
}

const apiCalls = {};
let mainCallback = null;
const context = vm.createContext({});
const parse = vm.runInContext("(function (text) { return JSON.parse(text); })", context);

function answer(callback, text) {
  if (typeof callback === "function") callback(parse(text));
}

const unsupported = '{"status":false,"pending":false,"error":"simnet: MDS.file is not supported"}';

context.MDS = {
  init(callback) {
    mainCallback = callback;
    callback(parse('{"event":"inited"}'));
    callback(parse('{"event":"MDSINIT"}'));
  },
  log(text) {
    send({ t: "log", d: String(text) });
  },
  cmd(command, callback) {
    answer(callback, call("cmd", command));
  },
  sql(statement, callback) {
    answer(callback, call("sql", statement));
  },
  notify(text) {
    call("notify", text);
  },
  notifycancel() {
    call("notifycancel", "*");
  },
  load(file) {
    if (String(file).indexOf("..") !== -1) {
      context.MDS.log("Invalid file for load as has .. in location");
      return;
    }
    const code = fs.readFileSync(path.join(folder, String(file)), "utf8");
    vm.runInContext(code, context, { filename: String(file) });
  },
  net: {
    GET(url, callback) {
      answer(callback, call("net", url));
    },
    GETAUTH(url, auth, callback) {
      answer(callback, call("netauth", url + "&" + auth));
    },
    POST(url, data, callback) {
      answer(callback, call("netpost", url + "&" + data));
    },
  },
  keypair: {
    get(key, callback) {
      answer(callback, call("keypair", "get&" + key));
    },
    set(key, value, callback) {
      answer(callback, call("keypair", "set&" + key + "&" + value));
    },
  },
  comms: {
    broadcast(message, callback) {
      answer(callback, call("comms", "public&" + message));
    },
    solo(message, callback) {
      answer(callback, call("comms", "private&" + message));
    },
  },
  api: {
    call(name, data, callback) {
      const id = "0x" + crypto.randomBytes(16).toString("hex").toUpperCase();
      apiCalls[id] = callback;
      call("api", name + "&request&" + id + "&" + data);
    },
    reply(name, id, data, callback) {
      answer(callback, call("api", name + "&response&" + id + "&" + data));
    },
  },
  file: new Proxy(
    {},
    {
      get: () =>
        function (...args) {
          answer(args.find((a) => typeof a === "function"), unsupported);
        },
    },
  ),
};

function dispatch(message) {
  // A reply to this service's own MDS.api.call goes to that call's callback only (ServiceJSRunner).
  if (message.event === "MDSAPI" && message.data && message.data.request === false) {
    const callback = apiCalls[message.data.id];
    if (callback !== undefined) {
      delete apiCalls[message.data.id];
      answer(callback, JSON.stringify({ status: message.data.status, data: message.data.message }));
    }
    return;
  }
  if (mainCallback) mainCallback(parse(JSON.stringify(message)));
}

function guarded(run) {
  try {
    run();
  } catch (err) {
    send({ t: "error", d: String((err && err.stack) || err) });
  }
  send({ t: "done" });
}

guarded(() => {
  const code = fs.readFileSync(path.join(folder, "service.js"), "utf8");
  vm.runInContext(code, context, { filename: "service.js" });
});
for (;;) {
  const message = JSON.parse(readLine());
  if (message.t === "event") guarded(() => dispatch(message.m));
}
