package cli

var describeCmd = &command{name: "describe"}
var callCmd = &command{name: "call"}
var healthCmd = &command{name: "health"}
var publishCmd = &command{name: "publish"}
