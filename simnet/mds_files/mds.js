// simnet's mds.js: the MDS library a MiniDapp page loads as "mds.js" (the node serves its own for that name,
// whatever the MiniDapp ships, and so does simnet). Same calls and callbacks as Minima's library, talking to
// /mdscommand_/<function>?uid=<session id> with the body URI-encoded, and polling /mdscommand_/poll for events.
"use strict";
var MDS = (function () {
  var mainCallback = null;
  var apiCalls = {};
  var series = "0";
  var counter = 0;

  function post(fn, data, callback) {
    var request = new XMLHttpRequest();
    request.open("POST", MDS.mainhost + fn + "?uid=" + MDS.minidappuid, true);
    request.overrideMimeType("text/plain; charset=UTF-8");
    request.onreadystatechange = function () {
      if (request.readyState !== XMLHttpRequest.DONE) return;
      if (request.status >= 200 && request.status < 400) {
        if (callback) callback(JSON.parse(request.responseText));
      } else {
        deliver({ event: "MDSFAIL", data: { command: fn, params: data, error: request.status } });
      }
    };
    request.send(encodeURIComponent(data));
  }

  function deliver(message) {
    if (message.event === "MDSAPI" && message.data && message.data.request === false) {
      var callback = apiCalls[message.data.id];
      if (callback !== undefined) {
        delete apiCalls[message.data.id];
        if (callback) callback({ status: message.data.status, data: message.data.message });
      }
      return;
    }
    if (mainCallback) mainCallback(message);
  }

  function poll() {
    var request = new XMLHttpRequest();
    request.open("POST", MDS.mainhost + "poll?uid=" + MDS.minidappuid, true);
    request.onreadystatechange = function () {
      if (request.readyState !== XMLHttpRequest.DONE) return;
      if (request.status !== 200) {
        setTimeout(poll, 10000);
        return;
      }
      var reply = JSON.parse(request.responseText);
      if (reply.series !== series) {
        series = reply.series;
        counter = reply.counter;
      } else if (reply.status) {
        counter = reply.response.counter + 1;
        deliver(reply.response.message);
      }
      poll();
    };
    request.send(encodeURIComponent("series=" + series + "&counter=" + counter));
  }

  function line() {
    return Array.prototype.join.call(arguments, "&");
  }

  return {
    minidappuid: null,
    mainhost: "",
    filehost: "",
    logging: false,
    init: function (callback) {
      MDS.minidappuid = MDS.form.getParams("uid") || "0x00";
      MDS.filehost = window.location.protocol + "//" + window.location.host + "/";
      MDS.mainhost = MDS.filehost + "mdscommand_/";
      mainCallback = callback;
      deliver({ event: "inited" });
      poll();
    },
    log: function (text) {
      console.log("Minima @ " + new Date().toLocaleString() + " : " + text);
    },
    notify: function (text) {
      post("notify", text);
    },
    notifycancel: function () {
      post("notifycancel", "*");
    },
    cmd: function (command, callback) {
      post("cmd", command, callback);
    },
    sql: function (statement, callback) {
      post("sql", statement, callback);
    },
    dapplink: function (name, callback) {
      post("dapplink", name, function (reply) {
        var link = { status: reply.status };
        if (reply.status) {
          link.uid = reply.response.uid;
          link.sessionid = reply.response.sessionid;
          link.base = MDS.filehost + link.uid + "/index.html?uid=" + link.sessionid;
        } else {
          link.error = reply.error;
        }
        callback(link);
      });
    },
    api: {
      call: function (name, data, callback) {
        var id = "" + Math.random() * 1000000000;
        apiCalls[id] = callback || null;
        post("api", line(name, "request", id, data));
      },
      reply: function (name, id, data, callback) {
        post("api", line(name, "response", id, data), callback);
      },
    },
    net: {
      GET: function (url, callback) {
        post("net", url, callback);
      },
      GETAUTH: function (url, auth, callback) {
        post("netauth", line(url, auth), callback);
      },
      POST: function (url, data, callback) {
        post("netpost", line(url, data), callback);
      },
    },
    keypair: {
      get: function (key, callback) {
        post("keypair", line("get", key), callback);
      },
      set: function (key, value, callback) {
        post("keypair", line("set", key, value), callback);
      },
    },
    comms: {
      broadcast: function (message, callback) {
        post("comms", line("public", message), callback);
      },
      solo: function (message, callback) {
        post("comms", line("private", message), callback);
      },
    },
    form: {
      getParams: function (name) {
        var params = new URLSearchParams(window.location.search);
        return params.has(name) ? params.get(name) : null;
      },
    },
  };
})();
