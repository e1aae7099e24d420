"""An outside gRPC client: the official Python grpcio, with no generated stubs.

It discovers funnelgate's GateService through server reflection (grpc.reflection.v1, using the
wire-identical messages grpcio-reflection ships), builds the message classes from the returned
descriptors, calls GetGate, and checks grpc.health.v1. Prints one JSON object.

usage: outside_client.py HOST:PORT FUNNEL
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def reflect(channel, requests):
    call = channel.stream_stream(
        REFLECTION,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=10))


def main():
    target, funnel = sys.argv[1], sys.argv[2]
    out = {}
    with grpc.insecure_channel(target) as channel:
        [services] = reflect(channel, [reflection_pb2.ServerReflectionRequest(list_services="")])
        out["services"] = sorted(s.name for s in services.list_services_response.service)

        [files] = reflect(
            channel,
            [reflection_pb2.ServerReflectionRequest(file_containing_symbol="funnelgate.v1.GateService")],
        )
        protos = {}
        todo = list(files.file_descriptor_response.file_descriptor_proto)
        while todo:
            p = descriptor_pb2.FileDescriptorProto.FromString(todo.pop())
            if p.name in protos:
                continue
            protos[p.name] = p
            for dep in p.dependency:
                if dep not in protos:
                    [more] = reflect(channel, [reflection_pb2.ServerReflectionRequest(file_by_filename=dep)])
                    todo.extend(more.file_descriptor_response.file_descriptor_proto)
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name in added:
                return
            for dep in protos[name].dependency:
                add(dep)
            pool.Add(protos[name])
            added.add(name)

        for name in protos:
            add(name)
        service = pool.FindServiceByName("funnelgate.v1.GateService")
        method = service.methods_by_name["GetGate"]
        req_cls = message_factory.GetMessageClass(method.input_type)
        resp_cls = message_factory.GetMessageClass(method.output_type)
        get_gate = channel.unary_unary(
            "/funnelgate.v1.GateService/GetGate",
            request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        resp = get_gate(req_cls(funnel=funnel), timeout=10)
        state_enum = pool.FindEnumTypeByName("funnelgate.v1.GateState")
        out["funnel"] = resp.decision.funnel
        out["state"] = state_enum.values_by_number[resp.decision.state].name
        out["stages"] = [s.stage for s in resp.decision.stages]
        try:
            get_gate(req_cls(funnel="no-such-funnel"), timeout=10)
            out["unknown_funnel"] = "OK"
        except grpc.RpcError as e:
            out["unknown_funnel"] = e.code().name

        health = health_pb2_grpc.HealthStub(channel)
        out["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
            health.Check(health_pb2.HealthCheckRequest(service="funnelgate.v1.GateService"), timeout=10).status
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
