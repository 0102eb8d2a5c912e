package io.github.cloudstackxenha.client;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.PreconditionFailure;
import com.google.rpc.ResourceInfo;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;

/**
 * A bridge call that failed, saying which call, about what, and why.
 *
 * <p>The message reads {@code FenceHost(pool=sim, host=host-2): FAILED_PRECONDITION: <the bridge's reason>}.
 * The bridge's structured details are kept: the field a {@code BadRequest}
 * names, the violations of a {@code PreconditionFailure} (an ElectMaster
 * refusal carries its whole trace there) and the reason of an
 * {@code ErrorInfo} ({@code STALE_EPOCH}, {@code RESUME_POINT_GONE},
 * {@code XENHA_NOT_CONVERGED}).
 *
 * <p>The subject is built by the client from pool and host names only: no
 * request is ever printed, so a password or token cannot reach the message.
 */
public final class XenHaBridgeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** One violation of a {@code PreconditionFailure} detail. */
    public static final class Violation implements java.io.Serializable {
        private static final long serialVersionUID = 1L;
        private final String type;
        private final String subject;
        private final String description;

        Violation(String type, String subject, String description) {
            this.type = type;
            this.subject = subject;
            this.description = description;
        }

        /** e.g. {@code ELECTION}, {@code CONTROLLER}, {@code TRACE:probe}. */
        public String type() {
            return type;
        }

        public String subject() {
            return subject;
        }

        public String description() {
            return description;
        }

        @Override
        public String toString() {
            return type + (subject.isEmpty() ? "" : "[" + subject + "]") + ": " + description;
        }
    }

    private final String rpc;
    private final Status.Code code;
    private final String reason;
    private final String field;
    private final List<Violation> violations;
    private final String errorReason;
    private final transient Map<String, String> errorMetadata;
    private final String resourceType;

    private XenHaBridgeException(String rpc, String subject, Status.Code code, String reason, String field,
            List<Violation> violations, String errorReason, Map<String, String> errorMetadata, String resourceType,
            Throwable cause) {
        super(rpc + "(" + subject + "): " + code + (reason.isEmpty() ? "" : ": " + reason)
                + (field.isEmpty() ? "" : " [field " + field + "]"), cause);
        this.rpc = rpc;
        this.code = code;
        this.reason = reason;
        this.field = field;
        this.violations = violations;
        this.errorReason = errorReason;
        this.errorMetadata = errorMetadata;
        this.resourceType = resourceType;
    }

    /**
     * Translates a gRPC failure.
     *
     * @param rpc the method, e.g. {@code FenceHost}
     * @param subject what the call was about, e.g. {@code pool=sim, host=host-2}; never secrets
     */
    static XenHaBridgeException from(String rpc, String subject, StatusRuntimeException e) {
        Status s = e.getStatus();
        String field = "";
        List<Violation> violations = new ArrayList<>();
        String errorReason = "";
        Map<String, String> errorMetadata = Collections.emptyMap();
        String resourceType = "";
        com.google.rpc.Status detailed = StatusProto.fromThrowable(e);
        if (detailed != null) {
            for (Any any : detailed.getDetailsList()) {
                try {
                    if (any.is(BadRequest.class)) {
                        BadRequest br = any.unpack(BadRequest.class);
                        if (br.getFieldViolationsCount() > 0) {
                            field = br.getFieldViolations(0).getField();
                        }
                    } else if (any.is(PreconditionFailure.class)) {
                        for (PreconditionFailure.Violation v : any.unpack(PreconditionFailure.class).getViolationsList()) {
                            violations.add(new Violation(v.getType(), v.getSubject(), v.getDescription()));
                        }
                    } else if (any.is(ErrorInfo.class)) {
                        ErrorInfo info = any.unpack(ErrorInfo.class);
                        errorReason = info.getReason();
                        errorMetadata = info.getMetadataMap();
                    } else if (any.is(ResourceInfo.class)) {
                        resourceType = any.unpack(ResourceInfo.class).getResourceType();
                    }
                } catch (InvalidProtocolBufferException malformed) {
                    // A detail we cannot decode adds nothing; the status itself still says what failed.
                    violations.add(new Violation("UNDECODABLE_DETAIL", any.getTypeUrl(), malformed.getMessage()));
                }
            }
        }
        String reason = s.getDescription() == null ? "" : s.getDescription();
        return new XenHaBridgeException(rpc, subject, s.getCode(), reason, field,
                Collections.unmodifiableList(violations), errorReason, errorMetadata, resourceType, e);
    }

    /** A failure found by the client itself (no call made, or a call's result unusable). */
    static XenHaBridgeException local(String rpc, String subject, Status.Code code, String reason, Throwable cause) {
        return new XenHaBridgeException(rpc, subject, code, reason, "", Collections.emptyList(), "", Collections.emptyMap(), "",
                cause);
    }

    /** The RPC that failed, e.g. {@code ElectMaster}. */
    public String rpc() {
        return rpc;
    }

    public Status.Code code() {
        return code;
    }

    /** The bridge's (or gRPC's) description, as given. */
    public String reason() {
        return reason;
    }

    /** The request field an INVALID_ARGUMENT names, or "". */
    public String field() {
        return field;
    }

    /** The violations of a FAILED_PRECONDITION (an election refusal: reason then trace). */
    public List<Violation> violations() {
        return violations;
    }

    /** The ErrorInfo reason, e.g. {@code STALE_EPOCH}, or "". */
    public String errorReason() {
        return errorReason;
    }

    /** The ErrorInfo metadata, e.g. a {@code hint}. */
    public Map<String, String> errorMetadata() {
        return errorMetadata == null ? Collections.emptyMap() : errorMetadata;
    }

    /** What a NOT_FOUND could not find ({@code pool} or {@code host}), or "". */
    public String resourceType() {
        return resourceType;
    }

    /** The bridge was not reached or did not answer in time: another try may work. */
    public boolean isTransient() {
        return code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED;
    }
}
