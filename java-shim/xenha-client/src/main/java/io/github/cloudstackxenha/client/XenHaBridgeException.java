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
 * {@code XENHA_NOT_CONVERGED}, {@code NOT_LEASE_HOLDER}, {@code LEASE_UNCERTAIN}).
 *
 * <p>Several management servers: a bridge that does not hold a pool's lease
 * refuses a call that would act with FAILED_PRECONDITION and
 * {@code NOT_LEASE_HOLDER}; {@link #leaseHolder()} and
 * {@link #leaseHolderAddress()} name the bridge that holds it (the message
 * does too, as {@code [lease holder <id> at <host:port>]} unless the
 * bridge's own reason already names it). When the client followed such a
 * refusal to the holder and the holder failed the call as well, the
 * exception is the holder's answer: the subject ends with
 * {@code via lease holder <id> at <host:port>}, {@link #answeredByLeaseHolder()}
 * is true and the first refusal is attached as a suppressed exception.
 * {@code LEASE_UNCERTAIN} (UNAVAILABLE: the bridge cannot tell who holds
 * the lease now) is {@linkplain #isTransient() transient}.
 *
 * <p>The subject is built by the client from pool and host names only: no
 * request is ever printed, so a password or token cannot reach the message.
 */
public final class XenHaBridgeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The ErrorInfo reason of a refusal by a bridge that does not hold the pool's lease. */
    public static final String NOT_LEASE_HOLDER = "NOT_LEASE_HOLDER";
    /** The ErrorInfo reason of an UNAVAILABLE from a bridge that cannot tell who holds the pool's lease. */
    public static final String LEASE_UNCERTAIN = "LEASE_UNCERTAIN";

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
    private final String leaseHolder;
    private final String leaseHolderAddress;
    private final boolean answeredByLeaseHolder;

    private XenHaBridgeException(String rpc, String subject, Status.Code code, String reason, String field,
            List<Violation> violations, String errorReason, Map<String, String> errorMetadata, String resourceType,
            String leaseHolder, String leaseHolderAddress, boolean answeredByLeaseHolder, Throwable cause) {
        super(rpc + "(" + subject + "): " + code + (reason.isEmpty() ? "" : ": " + reason)
                + (field.isEmpty() ? "" : " [field " + field + "]")
                + holderSuffix(errorReason, reason, leaseHolder, leaseHolderAddress), cause);
        this.rpc = rpc;
        this.code = code;
        this.reason = reason;
        this.field = field;
        this.violations = violations;
        this.errorReason = errorReason;
        this.errorMetadata = errorMetadata;
        this.resourceType = resourceType;
        this.leaseHolder = leaseHolder;
        this.leaseHolderAddress = leaseHolderAddress;
        this.answeredByLeaseHolder = answeredByLeaseHolder;
    }

    /** Names the holder of a NOT_LEASE_HOLDER refusal in the message, unless the bridge's reason does. */
    private static String holderSuffix(String errorReason, String reason, String holder, String address) {
        if (!NOT_LEASE_HOLDER.equals(errorReason) || (holder.isEmpty() && address.isEmpty())) {
            return "";
        }
        boolean named = (holder.isEmpty() || reason.contains(holder)) && (address.isEmpty() || reason.contains(address));
        if (named) {
            return "";
        }
        return " [lease holder " + (holder.isEmpty() ? "?" : holder) + (address.isEmpty() ? "" : " at " + address) + "]";
    }

    /**
     * Translates a gRPC failure.
     *
     * @param rpc the method, e.g. {@code FenceHost}
     * @param subject what the call was about, e.g. {@code pool=sim, host=host-2}; never secrets
     */
    static XenHaBridgeException from(String rpc, String subject, StatusRuntimeException e) {
        return translate(rpc, subject, e, null);
    }

    /**
     * Translates the failure of a call sent to the lease holder that
     * {@code refusal} named: the subject says where it was answered, the
     * refusal is attached as suppressed.
     */
    static XenHaBridgeException fromLeaseHolder(String rpc, String subject, XenHaBridgeException refusal,
            StatusRuntimeException e) {
        XenHaBridgeException x = translate(rpc, subject + ", via lease holder " + refusal.leaseHolder()
                + " at " + refusal.leaseHolderAddress(), e, refusal);
        x.addSuppressed(refusal);
        return x;
    }

    private static XenHaBridgeException translate(String rpc, String subject, StatusRuntimeException e,
            XenHaBridgeException followed) {
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
        String holder = "";
        String holderAddress = "";
        if (s.getCode() == Status.Code.FAILED_PRECONDITION && NOT_LEASE_HOLDER.equals(errorReason)) {
            holder = errorMetadata.getOrDefault("holder", "");
            holderAddress = errorMetadata.getOrDefault("holder_address", "");
        } else if (followed != null) {
            holder = followed.leaseHolder();
            holderAddress = followed.leaseHolderAddress();
        }
        return new XenHaBridgeException(rpc, subject, s.getCode(), reason, field,
                Collections.unmodifiableList(violations), errorReason, errorMetadata, resourceType, holder, holderAddress,
                followed != null, e);
    }

    /** A failure found by the client itself (no call made, or a call's result unusable). */
    static XenHaBridgeException local(String rpc, String subject, Status.Code code, String reason, Throwable cause) {
        return new XenHaBridgeException(rpc, subject, code, reason, "", Collections.emptyList(), "", Collections.emptyMap(), "",
                "", "", false, cause);
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

    /**
     * A bridge that does not hold the pool's lease refused the call
     * (FAILED_PRECONDITION, {@code NOT_LEASE_HOLDER}): retrying at that
     * bridge cannot succeed; {@link #leaseHolderAddress()} is where the call
     * can.
     */
    public boolean isNotLeaseHolder() {
        return code == Status.Code.FAILED_PRECONDITION && NOT_LEASE_HOLDER.equals(errorReason);
    }

    /**
     * The bridge could not tell who holds the pool's lease (UNAVAILABLE,
     * {@code LEASE_UNCERTAIN}: its database unreachable, or its own lease
     * ran out): nobody acted; transient.
     */
    public boolean isLeaseUncertain() {
        return code == Status.Code.UNAVAILABLE && LEASE_UNCERTAIN.equals(errorReason);
    }

    /**
     * The bridge id that holds the pool's lease, as a NOT_LEASE_HOLDER
     * refusal named it (this error's or, when the client followed one to the
     * holder, that refusal's); "" when no refusal named one.
     */
    public String leaseHolder() {
        return leaseHolder;
    }

    /** Where {@link #leaseHolder()} serves gRPC (host:port), or "". */
    public String leaseHolderAddress() {
        return leaseHolderAddress;
    }

    /**
     * This error is the lease holder's answer to a call the client sent
     * there after another bridge refused it with NOT_LEASE_HOLDER (attached
     * as suppressed).
     */
    public boolean answeredByLeaseHolder() {
        return answeredByLeaseHolder;
    }

    /**
     * The bridge was not reached or did not answer in time, or could not
     * tell who holds the pool's lease ({@code LEASE_UNCERTAIN}): another try
     * may work.
     */
    public boolean isTransient() {
        return code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED;
    }
}
